"""Nothing lost, nothing half-written (docs/reliability.md): locks, swaps, fingerprints, orphans.

Each test here proves one guarantee of docs/reliability.md; the doc names them.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest
from grid_fixtures import make_curve_run

from lossart.errors import LossartError
from lossart.grid.lock import GridLock
from lossart.locks import FileLock
from lossart.runs import Run

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- F2: locks


def _taker(grids: str, occupied: str, log: str, start: float, shard) -> None:
    """Try the grid lock again and again; while holding it, claim `occupied` exclusively (a
    second holder would find it claimed) and log what it saw."""
    while time.time() < start:
        time.sleep(0.001)
    took = overlaps = 0
    for _ in range(30):
        lock = GridLock(Path(grids), shard)
        try:
            lock.acquire()
        except LossartError:
            time.sleep(0.0005)
            continue
        try:
            fd = os.open(occupied, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            overlaps += 1  # someone else holds the lock right now: two holders
        else:
            took += 1
            time.sleep(0.0005)
            os.close(fd)
            os.unlink(occupied)
        finally:
            lock.release()
    line = json.dumps({"pid": os.getpid(), "took": took, "overlaps": overlaps}) + "\n"
    with open(log, "a") as f:
        f.write(line)


def _race(tmp_path: Path, takers: int, shards) -> list[dict]:
    grids, occupied, log = tmp_path / "grids", tmp_path / "occupied", tmp_path / "log.jsonl"
    grids.mkdir()
    ctx = multiprocessing.get_context("fork")
    start = time.time() + 1.5  # every process waits at the line, then all go at once
    procs = [
        ctx.Process(target=_taker, args=(str(grids), str(occupied), str(log), start, shards(i)))
        for i in range(takers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_200_simultaneous_lock_takers_never_give_two_holders(tmp_path):
    results = _race(tmp_path, 200, lambda i: None)
    assert len(results) == 200
    assert sum(r["overlaps"] for r in results) == 0
    assert sum(r["took"] for r in results) > 0  # the lock was taken, and taken many times
    assert len({r["pid"] for r in results if r["took"]}) > 1


def test_whole_jobs_and_one_shard_race_never_overlap(tmp_path):
    # Whole jobs exclude everything; one shard (the same one) excludes itself.
    results = _race(tmp_path, 60, lambda i: None if i % 2 else (1, 4))
    assert sum(r["overlaps"] for r in results) == 0 and sum(r["took"] for r in results) > 0


def test_shards_coexist_and_a_whole_job_is_refused_naming_the_holder(tmp_path):
    grids = tmp_path / "grids"
    with GridLock(grids, (0, 2)), GridLock(grids, (1, 2)):
        with pytest.raises(LossartError, match=r"another process \(pid \d+ on"):
            GridLock(grids, (1, 2)).acquire()  # the same shard twice
        with pytest.raises(LossartError, match="grids are being computed by another process"):
            GridLock(grids).acquire()
    with GridLock(grids):  # all released: the whole job goes
        with pytest.raises(LossartError, match="being computed"):
            GridLock(grids, (0, 2)).acquire()
    assert sorted(p.name for p in (grids / "locks").iterdir()) == [
        "all.lock", "grid.lock", "shard-0-of-2.lock", "shard-1-of-2.lock",
    ]  # fmt: skip


def _hold_forever(path: str, ready: str) -> None:
    lock = FileLock(path)
    assert lock.try_acquire()
    Path(ready).write_text("held")
    time.sleep(60)


def test_a_killed_holder_frees_the_lock_at_once(tmp_path):
    path, ready = tmp_path / "x.lock", tmp_path / "ready"
    proc = multiprocessing.get_context("fork").Process(target=_hold_forever, args=(path, ready))
    proc.start()
    deadline = time.time() + 20
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.01)
    lock = FileLock(path)
    assert not lock.try_acquire()
    assert lock.holder()["pid"] == proc.pid  # the message can say who holds it
    proc.kill()
    proc.join()
    assert lock.acquire(timeout=5)  # the kernel dropped the dead holder's lock
    assert path.exists()
    lock.release()


def _record(root: str, i: int, start: float) -> None:
    while time.time() < start:
        time.sleep(0.001)
    Run(Path(root)).record_command(f"shard-{i}")


def test_run_json_history_keeps_every_entry_of_commands_running_together(tmp_path):
    run = Run(tmp_path / "run")
    run.write({"kind": "curve"})
    ctx = multiprocessing.get_context("fork")
    start = time.time() + 1.0
    procs = [ctx.Process(target=_record, args=(str(run.root), i, start)) for i in range(24)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    names = sorted(c["command"] for c in run.read()["commands"])
    assert names == sorted(f"shard-{i}" for i in range(24))


# ---------------------------------------------------------------- fingerprints


def test_a_swapped_endpoint_is_refused_naming_the_file(tmp_path):
    from lossart.training.curve_run import load_curve_run

    run = make_curve_run(tmp_path / "run")  # a run made before fingerprints: recorded on first use
    assert "endpoints" not in run.read()
    load_curve_run(run)
    recorded = run.read()["endpoints"]
    assert set(recorded) == {"w1", "w2"} and len(recorded["w1"]["sha256"]) == 64
    load_curve_run(run)  # unchanged: fine
    other = make_curve_run(tmp_path / "other", seed=5)
    (run.endpoints / "w1.pt").write_bytes((other.endpoints / "w1.pt").read_bytes())
    with pytest.raises(LossartError) as err:
        load_curve_run(run)
    msg = str(err.value)
    assert "\n" not in msg and str(run.endpoints / "w1.pt") in msg
    assert "changed since the run was made: sha256" in msg


def test_grid_refuses_a_swapped_endpoint_in_one_line(tmp_path):
    import subprocess
    import sys

    run = make_curve_run(tmp_path / "run")
    load_from = make_curve_run(tmp_path / "other", seed=3)
    Run(run.root).endpoint("w2")  # recorded now
    (run.endpoints / "w2.pt").write_bytes((load_from.endpoints / "w2.pt").read_bytes())
    env = {**os.environ, "PYTHONPATH": str(REPO), "LOSSART_QUIET": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "lossart", "grid", str(run.root), "--resolution", "3"],
        capture_output=True, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "w2.pt changed since the run was made" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


# ---------------------------------------------------------------- F1: derived folders swapped in


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_failing_rebuild_leaves_the_old_bundle_byte_identical(tmp_path):
    from lossart.format.bundle import BundleError
    from lossart.terrain.bundle_write import write_bundle
    from lossart.terrain.synthetic import synthetic_bundle

    root = synthetic_bundle(tmp_path / "terrain", frames=3, size=17)
    before = _tree(root)
    spec = json.loads((root / "manifest.json").read_text())

    def frames_then_fail():
        raise MemoryError("out of memory half-way")
        yield

    from lossart.terrain.bundle_write import BundleSpec
    from lossart.terrain.heightfield import TerrainConfig

    bspec = BundleSpec("curve", spec["curve"], (0.0, 1.0), (0.0, 1.0), (17, 17), TerrainConfig(),
                       2.0, loss_min=0.01, offset=0.02)  # fmt: skip
    with pytest.raises(MemoryError):
        write_bundle(root, bspec, frames_then_fail())
    assert _tree(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["terrain"]  # no staging left
    with pytest.raises(BundleError, match="no frames to write"):
        write_bundle(root, bspec, iter([]))
    assert _tree(root) == before


def test_a_rebuild_replaces_the_bundle_and_sweeps_what_a_crash_left(tmp_path):
    from lossart.terrain.bundle_validate import validate_bundle
    from lossart.terrain.synthetic import synthetic_bundle

    root = synthetic_bundle(tmp_path / "terrain", frames=3, size=17)
    dead = 2**22 + 12345  # beyond the default pid_max: no such process
    torn = tmp_path / f".terrain.new-{dead}"  # a killed build's staging folder
    (torn / "heights").mkdir(parents=True)
    (torn / "heights" / "frame_00000.npy").write_bytes(b"partial")
    synthetic_bundle(root, frames=2, size=17)
    assert not torn.exists() and validate_bundle(root).ok
    assert len(json.loads((root / "manifest.json").read_text())["frames"]) == 2
    # Killed between "old aside" and "new in" (the fallback without renameat2): the complete
    # old bundle is put back before anything else happens.
    aside = tmp_path / f".terrain.old-{dead}"
    root.rename(aside)
    from lossart.swap import sweep

    assert sweep(root, complete=lambda p: (p / "manifest.json").is_file()) == []
    assert validate_bundle(root).ok and not aside.exists()


def test_a_folder_of_other_files_is_never_replaced(tmp_path):
    from lossart.format.bundle import BundleError
    from lossart.terrain.synthetic import synthetic_bundle

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(BundleError, match="not a terrain bundle; refusing to replace"):
        synthetic_bundle(mine, frames=1, size=9)
    assert (mine / "thesis.tex").read_text() == "precious"


KILL_BUILD = """
import sys, time
import numpy as np
from lossart.terrain.bundle_write import BundleFrame, BundleSpec, NamedPoint, write_bundle
from lossart.terrain.heightfield import TerrainConfig

def frames(n):
    for i in range(n):
        time.sleep(0.04)  # the heights' compute, which is what takes time in `lossart terrain`
        z = np.random.default_rng(i).random((33, 33), dtype=np.float32)
        cp = np.array([[0.1, 0.1], [0.5, 0.9], [0.9, 0.1]])
        yield BundleFrame(i, i, float(i), 1.0, z, 0, cp, [NamedPoint("w1", (0.1, 0.1), 0.01)])

spec = BundleSpec("curve", {"kind": "bezier", "bends": 1}, (0.0, 1.0), (0.0, 1.0), (33, 33),
                  TerrainConfig(path_samples=16), 2.0, loss_min=0.01, offset=0.02)
write_bundle(sys.argv[1], spec, frames(int(sys.argv[2])))
"""


def test_kill_9_during_a_rebuild_always_leaves_a_complete_bundle(tmp_path):
    import signal
    import subprocess
    import sys

    from lossart.format.bundle import load_bundle
    from lossart.terrain.bundle_validate import validate_bundle
    from lossart.terrain.synthetic import synthetic_bundle

    root = synthetic_bundle(tmp_path / "terrain", frames=2, size=17)
    env = {**os.environ, "PYTHONPATH": str(REPO), "LOSSART_QUIET": "1"}
    counts = set()
    for delay in (0.5, 0.8, 1.1, 1.4, 1.8):  # import ~0.5 s, then a build of ~1.5 s
        proc = subprocess.Popen([sys.executable, "-c", KILL_BUILD, str(root), "40"], env=env)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        from lossart.swap import sweep

        sweep(root, complete=lambda p: (p / "manifest.json").is_file())
        assert validate_bundle(root).ok, f"killed after {delay} s: {validate_bundle(root).summary()}"
        counts.add(len(load_bundle(root).frames))
    assert counts <= {2, 40} and 2 in counts


# ---------------------------------------------------------------- F3: no orphan Blender


def _children(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie is dead, waiting for its new parent to reap it


def _start_video(tmp_path: Path):
    import subprocess
    import sys

    from lossart.terrain.synthetic import synthetic_bundle

    pytest.importorskip("bpy", reason="the bpy module (Blender as a Python module) is not installed")
    if not Path("/proc/self/stat").is_file():
        pytest.skip("needs /proc to find the Blender child")
    bundle = synthetic_bundle(tmp_path / "terrain", frames=30, size=17)
    out = tmp_path / "renders" / "film.mp4"
    args = ["render", str(bundle), "--video", "--out", str(out), "--size", "64x48", "--samples",
            "1", "--duration", "60", "--no-denoise", "--render-device", "CPU"]  # fmt: skip
    # 60 s at 24 fps: ~1440 tiny frames, so the render is still going when the test strikes,
    # however fast Blender races ahead of a test process starved on a loaded machine
    env = {**os.environ, "PYTHONPATH": str(REPO), "LOSSART_QUIET": "1"}
    import signal

    def default_sigint() -> None:  # a test run in the background (`cmd &`) inherits SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # ignored; a terminal's Ctrl-C is not

    proc = subprocess.Popen([sys.executable, "-m", "lossart", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=default_sigint)  # fmt: skip
    deadline = time.time() + 120
    kids: list[int] = []
    while time.time() < deadline and not kids:
        kids = _children(proc.pid)
        time.sleep(0.05)
    assert kids, "Blender never started"
    frames = out.parent / "film_frames"
    while time.time() < deadline and not list(frames.glob("frame_*.png")):
        time.sleep(0.05)  # Blender is rendering now
    return proc, kids, out


def test_kill_9_of_render_video_leaves_no_blender_running(tmp_path):
    import signal

    proc, kids, out = _start_video(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t0 = time.time()
    while time.time() - t0 < 2.0 and any(_alive(k) for k in kids):
        time.sleep(0.02)
    assert not any(_alive(k) for k in kids), f"Blender {kids} outlived lossart by 2 s"
    # the frames folder is free again, and a new render would sweep the leftovers
    from lossart.locks import FileLock

    lock = FileLock(out.parent / ".film_frames.lock")
    assert lock.acquire(timeout=2)  # (the kernel closes a killed process's files as it exits)
    lock.release()


def test_ctrl_c_on_render_leaves_no_job_or_status_files(tmp_path):
    import signal

    proc, kids, out = _start_video(tmp_path)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(120) != 0
    assert not any(_alive(k) for k in kids)
    left = sorted(p.name for p in out.parent.glob(".film.*"))
    assert left == [], left


def test_sigterm_on_render_then_rerun_reuses_frames_sweeps_leftovers_same_video(tmp_path):
    """SIGTERM (a scheduler's pre-emption) mid-video: Blender dies with lossart, exit 143, the
    frames done stay; what a kill -9 would have left (job, status, lock files) is swept by the
    next render of the same name, which reuses the frames and ends with the frames of an
    uninterrupted render."""
    import signal
    import subprocess
    import sys

    import imageio.v3 as iio

    from lossart.terrain.synthetic import synthetic_bundle

    pytest.importorskip("bpy", reason="the bpy module (Blender as a Python module) is not installed")
    bundle = synthetic_bundle(tmp_path / "terrain", frames=4, size=9)
    env = {**os.environ, "PYTHONPATH": str(REPO), "LOSSART_QUIET": "1"}

    def render(out: Path, **kw):
        args = [sys.executable, "-m", "lossart", "render", str(bundle), "--video", "--out",
                str(out), "--size", "64x48", "--samples", "1", "--no-denoise", "--render-device",
                "CPU", "--speed", "1", "--camera", "overview"]  # fmt: skip  # 64x48: a few noisy
        # pixels stay a small share (at 32x24 sixteen of them were 2.1%)
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, **kw)  # fmt: skip

    ref = render(tmp_path / "ref" / "film.mp4")
    assert ref.wait(300) == 0, ref.stderr.read()
    out = tmp_path / "renders" / "film.mp4"
    proc = render(out)
    frames = out.parent / "film_frames"
    deadline = time.time() + 240
    while time.time() < deadline and not list(frames.glob("frame_*.png")):
        time.sleep(0.02)
    kids = _children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and "terminated (SIGTERM)" in err, err
    assert not any(_alive(k) for k in kids)
    done = len(list(frames.glob("frame_*.png")))
    assert 1 <= done < 4, f"SIGTERM landed with {done} of 4 frames rendered"
    assert sorted(p.name for p in out.parent.glob(".film*")) == []
    for name in (".film.job.json", ".film.status.json"):  # as a kill -9 leaves them
        (out.parent / name).write_text('{"error": "stale"}')
    (out.parent / ".film_frames.lock").write_text('{"pid": 1}')
    again = render(out)
    stdout, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert f"{done} reused" in stdout
    assert sorted(p.name for p in out.parent.glob(".film*")) == []
    for k in range(1, 5):  # equal up to Cycles' run-to-run noise (a few pixels of 1 sample)
        a = iio.imread(tmp_path / "ref" / "film_frames" / f"frame_{k:05d}.png").astype(int)
        b = iio.imread(frames / f"frame_{k:05d}.png").astype(int)
        assert a.shape == b.shape and np.abs(a - b).mean() < 0.5, k
        # Cycles at 1 sample differs between two whole renders too: 1.6-3.2% of these pixels,
        # measured with the hero style's occlusion and haze (was < 2% before them)
        assert (np.abs(a - b).max(axis=-1) > 0).mean() < 0.05, k


def test_a_render_refuses_a_frames_folder_another_live_render_writes(tmp_path):
    from lossart.render import Look, render_video
    from lossart.render.job import claim
    from lossart.terrain.synthetic import synthetic_bundle

    bundle = synthetic_bundle(tmp_path / "terrain", frames=2, size=9)
    out = tmp_path / "renders" / "film.mp4"
    with claim(out.parent / "film_frames", "these frames"):
        with pytest.raises(LossartError, match=r"another render is writing these frames \(pid"):
            render_video(bundle, out, look=Look(size=(16, 16)))


# ---------------------------------------------------------------- F7: housekeeping


def test_a_resumed_grid_says_it_resumes(tmp_path, capsys):
    from lossart.grid.run_grid import GridConfig, grid_run

    run = make_curve_run(tmp_path / "run")
    cfg = dict(resolution=(4, 4), subset=16, tile_rows=1, quiet=True)
    grid_run(run.root, GridConfig(select_frames="0", **cfg))
    assert "resuming" not in capsys.readouterr().err  # nothing was there to resume
    grid_run(run.root, GridConfig(select_frames="0:2", **cfg))
    err = capsys.readouterr().err
    assert "lossart: resuming: 4/8 tiles already done" in err
    grid_run(run.root, GridConfig(select_frames="0:2", **cfg))
    assert "resuming" not in capsys.readouterr().err  # all done: nothing resumed


def test_one_trainer_per_output_at_a_time(tmp_path):
    from lossart.locks import working_on
    from lossart.training.curve import CurveConfig, train_curve
    from lossart.training.endpoints import TrainConfig, train_endpoint

    run = make_curve_run(tmp_path / "ends")
    out = tmp_path / "w1.pt"
    with working_on(out, "`lossart train`"):
        with pytest.raises(LossartError, match=r"w1.pt: another `lossart train` is writing it \(pid"):
            train_endpoint(TrainConfig(data="shapes", model="smallcnn", epochs=1, out=str(out)))
    assert not out.exists()
    curve = tmp_path / "curve"
    cfg = CurveConfig(w1=str(run.endpoints / "w1.pt"), w2=str(run.endpoints / "w2.pt"),
                      out=str(curve), epochs=1)  # fmt: skip
    with working_on(curve, "`lossart curve`"):
        with pytest.raises(LossartError, match="another `lossart curve` is writing it"):
            train_curve(cfg)
    assert not curve.exists()



def test_a_plane_run_records_its_endpoints_when_made(tmp_path):
    from lossart.grid.plane3 import create_plane_run
    from lossart.runs import sha256_file

    a, b = make_curve_run(tmp_path / "a"), make_curve_run(tmp_path / "b", seed=4)
    sources = [a.endpoints / "w1.pt", a.endpoints / "w2.pt", b.endpoints / "w1.pt"]
    run = create_plane_run(sources, tmp_path / "plane")
    recorded = run.read()["endpoints"]
    assert {n: r["sha256"] for n, r in recorded.items()} == {
        n: sha256_file(s) for n, s in zip(("w1", "w2", "w3"), sources, strict=True)
    }
    (run.endpoints / "w3.pt").write_bytes((b.endpoints / "w2.pt").read_bytes())
    with pytest.raises(LossartError, match=r"w3.pt changed since the run was made"):
        run.endpoint("w3")
    assert run.endpoint("w1") == run.endpoints / "w1.pt"


def test_a_refused_command_leaves_no_lock_file_and_a_removed_lock_is_not_held(tmp_path):
    from lossart.errors import LossartError
    from lossart.locks import FileLock, lock_beside, working_on

    target = tmp_path / "a.pt"
    with pytest.raises(LossartError):
        with working_on(target, "`lossart train`"):
            raise LossartError("--model-arg width=0: expected > 0")
    assert not lock_beside(target).exists()  # bad input: nothing appeared
    with working_on(target, "`lossart train`"):
        pass
    assert not lock_beside(target).exists()  # work was done: nothing is left beside it either

    path = tmp_path / "x.lock"
    first, second = FileLock(path), FileLock(path)
    assert first.try_acquire()
    fd = os.open(path, os.O_RDWR)  # a taker that opened the old file before it was removed
    first.release(remove=True)
    assert second.try_acquire() and second._names(second.fileno())
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the orphan inode locks, but names nothing
    assert not FileLock(path)._names(fd)
    os.close(fd)
    second.release()
