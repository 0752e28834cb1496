"""The beam-search tree as a static figure (PNG or SVG), from `atento.api.Model.search_trace`.

One column per decoding step, holding the 2K candidates the beam scored, best at the top, each
labelled with its piece and length-normalised score: kept candidates (blue) continue as the
next step's beams, finished ones (green) are EOS hypotheses that entered the n-best, pruned
ones (grey) were scored and dropped. Lines join each candidate to the beam it extends. A PNG
carries `atento:steps`, `atento:kept`, `atento:finished`, `atento:pruned` text chunks (counts),
so tests can check the drawing without reading pixels.
"""

from __future__ import annotations

from pathlib import Path

from atento.analysis.plotting import plt, save_figure

COLOURS = {"kept": "#3a7bd5", "finished": "#2e9d57", "pruned": "#c9c9c9"}
TEXT = {"kept": "white", "finished": "white", "pruned": "#333333"}


def _label(piece: str, score: float) -> str:
    piece = piece.replace(" ", "\u2423")
    piece = piece if len(piece) <= 10 else piece[:9] + "\u2026"
    return f"{piece}  {score:.2f}"


def draw_beam_tree(trace: dict, path: str | Path, *, title: str = "") -> Path:
    """Draw `trace` (`search_trace`'s plain data: steps of candidates with piece, parent,
    score, status, slot) into `path` (.png or .svg); returns the path."""
    steps = trace["steps"]
    rows = max([len(s["candidates"]) for s in steps] or [1])
    fig, ax = plt.subplots(figsize=(min(2.0 + 1.45 * (len(steps) + 1), 60), 1.0 + 0.34 * rows))
    counts = dict.fromkeys(COLOURS, 0)
    kept_y = [{0: 0.0}]  # per step, slot -> y of the kept node; step -1 is <s>
    box = dict(boxstyle="round,pad=0.25", linewidth=0)
    ax.text(0, 0, "<s>", ha="center", va="center", fontsize=8, color="white",
            bbox={**box, "facecolor": COLOURS["kept"]})  # fmt: skip
    for t, step in enumerate(steps):
        x = t + 1
        slots = {}
        for i, c in enumerate(step["candidates"]):
            y = -float(i)
            parent_y = kept_y[t].get(c["parent"], 0.0)
            live = c["status"] != "pruned"
            ax.plot([x - 0.62, x - 0.38], [parent_y, y], color="#3a7bd5" if live else "#aaaaaa",
                    linewidth=1.2 if live else 0.6, zorder=1)  # fmt: skip
            ax.text(x, y, _label(c["piece"], c["score"]), ha="center", va="center", fontsize=7,
                    color=TEXT[c["status"]], zorder=2,
                    bbox={**box, "facecolor": COLOURS[c["status"]]})  # fmt: skip
            counts[c["status"]] += 1
            if c["status"] == "kept":
                slots[c["slot"]] = y
        kept_y.append(slots)
    ax.set_xlim(-0.6, len(steps) + 0.6)
    ax.set_ylim(-rows + 0.4, 0.7)
    ax.set_xticks(range(len(steps) + 1), labels=["start", *(str(t + 1) for t in range(len(steps)))])
    ax.set_xlabel("decoding step")
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    ax.legend(handles, list(COLOURS), loc="lower left", fontsize=7, ncol=3, frameon=False,
              bbox_to_anchor=(0, 1.0))  # fmt: skip
    if title:
        ax.set_title(title, fontsize=9, pad=18)
    path = Path(path)
    meta = None
    if path.suffix.lower() == ".png":
        meta = {
            "atento:steps": str(len(steps)),
            **{f"atento:{k}": str(v) for k, v in counts.items()},
        }
    return save_figure(fig, path, metadata=meta)
