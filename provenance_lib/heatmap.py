"""The package's one 24 x 24 bin heatmap: a 576-bin vector drawn as topics (rows) x formats (columns) in taxonomy
order, on a colour scale that a whole figure family shares and states on every colour bar.

A figure family is every heatmap of one quantity a stage draws (stage 03's z under every variant and benchmark,
stage 04's correctness differential, stage 02's bin profiles, stage 01's documents per bin): the same colour means
the same value on every panel of it. A signed quantity gets a linear scale symmetric about 0 up to the 99.5th
percentile of the family's |values| (one extreme bin would otherwise wash out the rest); the few bins beyond it are
drawn at full colour and labelled with their value, so the top bin is never hidden. A count gets a log scale from
the family's smallest to its largest non-zero count. Bins without a value are grey.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .taxonomy import load as load_taxonomy

MISSING_COLOUR = "0.85"


@dataclass(frozen=True)
class Scale:
    """One colour scale of a figure family, with the sentence its colour bars state."""

    cmap: str
    vmin: float
    vmax: float
    log: bool
    label: str

    def norm(self):
        from matplotlib.colors import LogNorm, Normalize

        return (LogNorm if self.log else Normalize)(vmin=self.vmin, vmax=self.vmax)


def diverging(values, quantity: str, family: str, percentile: float = 99.5) -> Scale:
    """A linear scale symmetric about 0 up to the ``percentile`` of the finite |values| of the whole family
    (``values``: any shape)."""
    finite = np.abs(np.asarray(values, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    limit = float(np.percentile(finite, percentile)) if finite.size and finite.max() > 0 else 1.0
    beyond = int((finite > limit).sum())
    return Scale(
        "RdBu_r",
        -limit,
        limit,
        False,
        f"{quantity}\none linear scale ±{limit:.2g} for every {family};\n"
        f"{beyond} bin(s) beyond it: full colour, value written in the bin",
    )


def counts(values, quantity: str, family: str) -> Scale:
    """A log scale over the non-zero counts of ``values``; zero counts are drawn as missing."""
    array = np.asarray(values, dtype=np.float64)
    positive = array[np.isfinite(array) & (array > 0)]
    low, high = (float(positive.min()), float(positive.max())) if positive.size else (1.0, 10.0)
    return Scale(
        "viridis",
        max(low, 1.0),
        max(high, low + 1.0, 2.0),
        True,
        f"{quantity}\none log scale {low:,.0f}-{high:,.0f} for every {family}; grey: none",
    )


def draw_bins(ax, values, title: str, scale: Scale) -> None:
    """One 24 x 24 heatmap of a 576-bin vector on ``scale``, with its colour bar; a bin beyond a linear scale's range
    carries its value. Drawn with matplotlib's imshow: ``seaborn.heatmap`` redraws the whole figure on every call
    (to check tick-label overlap), which is quadratic in the panels of a grid (a 2 x 2 took 15 s against 2 s)."""
    import matplotlib

    tax = load_taxonomy()
    grid = np.asarray(values, dtype=np.float64).reshape(len(tax.topics), len(tax.formats))
    hidden = ~np.isfinite(grid) | ((grid <= 0) if scale.log else False)
    image = ax.imshow(
        np.ma.masked_array(grid, hidden),
        cmap=matplotlib.colormaps[scale.cmap],
        norm=scale.norm(),
        interpolation="nearest",
    )
    if not scale.log:
        for row, column in zip(*np.nonzero(np.isfinite(grid) & (np.abs(grid) > scale.vmax))):
            value = grid[row, column]
            ax.text(
                column,
                row,
                f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}",
                ha="center",
                va="center",
                fontsize=6,
                color="white",
                fontweight="bold",
            )
    ax.set_facecolor(MISSING_COLOUR)
    ax.set_xticks(range(len(tax.formats)), tax.formats.shorts, rotation=90)
    ax.set_yticks(range(len(tax.topics)), tax.topics.shorts)
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)
    ax.figure.colorbar(image, ax=ax, shrink=0.6, extend="neither" if scale.log else "both").set_label(scale.label)
    ax.set(title=title, xlabel="format", ylabel="topic")
