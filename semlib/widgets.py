"""ipywidgets controls for notebook 08: they collect :class:`semlib.explore.Settings`, call
:func:`semlib.explore.run` (from the grid when it holds the setting) and show the figure and the
clean-accuracy table it leads to; no logic of their own. Every redraw replaces both."""
from __future__ import annotations

import io

import ipywidgets as w
import matplotlib.pyplot as plt
from IPython.display import display

from . import explore, plots
from .study import Study

ATTACK_CHOICES = ("bim", "mim", "pgd", "nes", "spsa")


class Explorer:
    """The control panel and plot of one study. ``Explorer(study).show()`` in a notebook."""

    def __init__(self, study: Study, n_images: int | None = None, grid: explore.Grid | None = None):
        self.study, self.grid = study, grid
        t = study.table[study.table.name.isin(study.collection("sem"))]
        n_fam = t.family.nunique()
        sigmas = sorted(t.sigma.unique())
        archs = sorted(t.arch.unique())
        style = {"description_width": "110px"}
        self.k = w.IntRangeSlider(value=(1, min(4, n_fam)), min=1, max=n_fam, description="K (min, max)", style=style)
        self.sigmas = w.SelectMultiple(options=[(f"{s:g}", float(s)) for s in sigmas], value=tuple(map(float, sigmas)),
                                       description="sigmas", rows=min(6, len(sigmas)), style=style)
        self.archs = w.SelectMultiple(options=archs, value=tuple(archs), description="architectures",
                                      rows=min(8, len(archs)), style=style)
        self.attack = w.Dropdown(options=ATTACK_CHOICES, value="bim", description="attack", style=style)
        self.goal = w.ToggleButtons(options=("untargeted", "targeted"), description="goal", style=style)
        self.norm = w.Dropdown(options=[(study.cfg.norm, study.cfg.norm)], description="norm", style=style,
                               tooltip="fixed by the study's STUDY['norm']")
        self.n_images = w.IntSlider(value=min(n_images or 4, len(study.y)), min=1, max=len(study.y),
                                    description="images", style=style)
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.status = w.HTML()
        self.plot = w.Image(format="png", layout=w.Layout(max_width="760px", width="100%", height="auto"))  # PNG: any backend
        self.accuracy = w.HTML()  # clean MC accuracy of every curve shown, replaced by every redraw
        self.log = w.Output()  # progress bars
        self.button.on_click(lambda _: self.run())
        controls = w.VBox([self.k, self.sigmas, self.archs, self.attack, self.goal, self.norm, self.n_images,
                           self.button, self.status], layout=w.Layout(flex="0 0 420px", width="420px"))
        figure = w.VBox([self.plot, self.accuracy, self.log], layout=w.Layout(flex="1 1 auto", overflow="hidden", min_width="0"))
        self.panel = w.HBox([controls, figure], layout=w.Layout(width="100%"))

    def settings(self) -> explore.Settings:
        archs = tuple(self.archs.value)
        return explore.Settings(k_range=tuple(self.k.value), sigmas=tuple(self.sigmas.value),
                                archs=() if len(archs) == len(self.archs.options) else archs,
                                attack=self.attack.value, goal=self.goal.value, n_images=self.n_images.value)

    def run(self) -> explore.Result | None:
        s = self.settings()
        self.button.disabled = True
        self.status.value = f"<i>running {s.name()} …</i>"
        try:
            with self.log:
                self.log.clear_output(wait=True)
                result = explore.run(self.study, s, grid=self.grid)
            sem_label = result.curves.label.iloc[0]
            fig = plots.asr_panels(result.curves, rows=None, solid=[sem_label],
                                   dashed=[x for x in result.curves.label.unique() if x != sem_label],
                                   norm=self.study.cfg.norm, title=f"{s.attack.upper()} {s.goal}: {s.name()}")
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
            plt.close(fig)
            self.plot.value = buf.getvalue()
        except ValueError as e:  # a bad choice (e.g. an empty collection): say so, keep the panel alive
            self.status.value = f"<b style='color:#b00'>{e}</b>"
            return None
        finally:
            self.button.disabled = False
        n = s.n_images
        self.accuracy.value = ("<table><tr><th>curve</th><th>clean MC accuracy</th><th>images</th></tr>" + "".join(
            f"<tr><td>{r.label}</td><td>{r.clean_accuracy:.0%}</td><td>{n}</td></tr>" for r in result.accuracy.itertuples())
            + "</table>")
        where = "from the grid" if result.source == "grid" else "computed (now cached)"
        self.status.value = f"{len(result.members)} sub-models; {where} in {result.seconds:.2f} s"
        self.last = result
        return result

    def show(self) -> "Explorer":
        display(self.panel)
        return self
