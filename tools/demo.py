"""`make demo`: one sample from every shipped pretrained model into out/."""

import sys
from pathlib import Path

import zoo
from zoo.errors import ZooError
from zoo.midi import write_midi


README_IMAGES = ("musegan-bach", "coconet-bach")   # the README shows these models' chorales


def demo_options(name: str) -> dict:
    """Generate options of the demo's piece: Coconet harmonizes the tune shipped beside its weights."""
    if name == "coconet-bach":
        return {"prompt": str(Path(zoo.info(name)["local_path"]) / "tune.mid")}
    return {}


def readme_images(name: str, midi, staves=None) -> None:
    """docs/img/NAME.png (piano roll) and, with an engraver installed, docs/img/NAME-score.png (first system)."""
    import zoo_render as render

    img = Path("docs/img")
    print(f"{name}: {render.plot_pianoroll(midi, img / f'{name}.png', title=f'{name} (seed 0)')}")
    if render.engraver() is None:
        print(f"demo: no engraver (apt-get install lilypond): skipping {img / f'{name}-score.png'}", file=sys.stderr)
        return
    print(f"{name}: {render.write_score(midi, img / f'{name}-score.png', title=f'{name} (seed 0)', first_system=True, staves=staves)}")


# The plugins this repository ships. Other installed plugins are not the demo's business: a
# third party's model may have no weights on this machine, and must never fail `make demo`.
SHIPPED_PLUGINS = ("musezoo-musegan", "musezoo-music-transformer", "musezoo-coconet")


def plan() -> tuple[list[str], list[str]]:
    """(the shipped pretrained names, every other installed pretrained name), each sorted."""
    shipped, others = [], []
    for name in zoo.list_models():
        (shipped if zoo.info(name)["plugin"] in SHIPPED_PLUGINS else others).append(name)
    return shipped, others


def main() -> int:
    out = Path("out")
    out.mkdir(exist_ok=True)   # zoo.midi writes only into folders that exist
    shipped, others = plan()
    for name in others:
        print(f"demo: skipping {name} (plugin {zoo.info(name)['plugin']}): the demo covers the models musezoo ships",
              file=sys.stderr)
    if not shipped:
        print(f"demo: no shipped pretrained model is registered; install {' and '.join(SHIPPED_PLUGINS)}",
              file=sys.stderr)
        return 1
    missing = []
    for name in shipped:
        try:
            model = zoo.load(name)
            (midi,) = model.generate(num=1, seed=0, **demo_options(name))
            path = write_midi(midi, out / f"{name}.mid")
            if name in README_IMAGES:
                # the short score (two staves) when the model declares one: it fits the README's width
                readme_images(name, midi, model.score_layouts.get("2"))
        except ZooError as exc:
            print(f"demo: {name}: {exc}", file=sys.stderr)
            missing.append(name)
            continue
        print(f"{name}: {path}")
    if missing:
        print(f"demo: no usable weights for: {', '.join(missing)} (is its plugin installed? see zoo plugins)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
