"""What lossart and its Blender extension share, defined once: the terrain bundle's format and its
reader (manifest.py declares the manifest once, schema.py reads and writes declared records;
bundle.py, png16.py, errors.py), the look options, their presets and the styles' specs (look.py, presets.py, styles.py)
and the video's timeline (timeline.py).

numpy, json and the standard library only, relative imports only: `lossart addon build` copies
this package into the extension zip beside the add-on, which imports it as `..format`, so the
add-on runs in a Blender without lossart while lossart reads the very same definitions.
"""
