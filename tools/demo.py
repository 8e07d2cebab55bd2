"""`make demo`: one sample from every shipped pretrained model into out/."""

import sys
from pathlib import Path

import zoo
from zoo.errors import ZooError
from zoo.midi import write_midi


def main() -> int:
    out = Path("out")
    names = zoo.list_models()
    if not names:
        print("demo: no pretrained models are registered; is a plugin installed?", file=sys.stderr)
        return 1
    missing = []
    for name in names:
        if zoo.info(name)["local_path"] is None:
            missing.append(name)
            continue
        try:
            model = zoo.load(name)
            path = write_midi(model.generate(num=1, seed=0), out / f"{name}.mid")
        except ZooError as exc:
            print(f"demo: {name}: {exc}", file=sys.stderr)
            missing.append(name)
            continue
        print(f"{name}: {path}")
    if missing:
        print(f"demo: no usable weights for: {', '.join(missing)} (expected under weights/<name>/)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
