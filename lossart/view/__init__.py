"""Any run in a browser: the terrain and its training as one self-contained interactive page.

```python
from lossart.view import ViewConfig, view_figure, write_view
fig = view_figure("runs/mine")                 # a plotly Figure (notebooks: fig.show())
write_view("runs/mine", "mine.html", ViewConfig(palette="viridis"))
```
"""

from lossart.view.figure import view_figure
from lossart.view.page import ViewResult, write_view
from lossart.view.plan import ViewConfig, ViewPlan
from lossart.view.source import ViewSource, open_source

__all__ = [
    "ViewConfig", "ViewPlan", "ViewResult", "ViewSource", "open_source", "view_figure",
    "write_view",
]  # fmt: skip
