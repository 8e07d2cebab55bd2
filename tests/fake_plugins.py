"""Broken third-party plugins, laid out as installed distributions by tests that need them."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_distribution

BROKEN = {
    "zoo-importfail": ({"importfail": "zoo_importfail"},
                       {"zoo_importfail/__init__.py": "raise ImportError('no module named banana')\n"}),
    "zoo-hookfail": ({"hookfail": "zoo_hookfail"}, {"zoo_hookfail/__init__.py": """
        from zoo import hookimpl
        @hookimpl
        def register_architectures(register):
            register("half-registered", "x:y")
        @hookimpl
        def register_pretrained(register):
            raise RuntimeError("hook exploded")
        """}),
    "zoo-copycat": ({"copycat": "zoo_copycat"}, {"zoo_copycat/__init__.py": """
        from zoo import hookimpl
        @hookimpl
        def register_architectures(register):
            register("tiny-lm", "zoo_copycat:Nope")
        """}),
    "zoo-notok": ({"notok": "zoo_notok"}, {"zoo_notok/__init__.py": """
        from zoo import hookimpl
        @hookimpl
        def register_architectures(register):
            register("notok", "zoo_notok.model:NoTok")
        """, "zoo_notok/model.py": """
        from zoo.model import Model
        class NoTok(Model):
            arch = "notok"
            tokenizer_name = "missing-tokenizer"
        """}),
    "zoo-lazyfail": ({"lazyfail": "zoo_lazyfail"}, {"zoo_lazyfail/__init__.py": """
        from zoo import hookimpl
        @hookimpl
        def register_architectures(register):
            register("lazyfail", "zoo_lazyfail.model:Model")
        @hookimpl
        def register_trainers(register):
            register("lazyfail", "zoo_lazyfail.model:Trainer")
        """, "zoo_lazyfail/model.py": "raise RuntimeError('CUDA extension failed to build')\n"}),
    "zoo-badregister": ({"badregister": "zoo_badregister"}, {"zoo_badregister/__init__.py": """
        from zoo import hookimpl
        @hookimpl
        def register_architectures(register):
            register(5, "zoo_badregister:X")
        """}),
    "zoo-notaspec": ({"notaspec": "zoo_notaspec"}, {"zoo_notaspec/__init__.py": """
        from zoo import hookimpl
        @hookimpl
        def register_pretrained(register):
            register("not-a-spec", {"arch": "tiny-lm"})
        """}),
}


# plugins that work but lack something a user will miss (warned about, not skipped)
INCOMPLETE = {
    "zoo-nodescription": ({"nodescription": "zoo_nodescription"}, {"zoo_nodescription/__init__.py": """
        from zoo import PretrainedSpec, hookimpl
        @hookimpl
        def register_pretrained(register):
            register(PretrainedSpec(name="tiny-mute", arch="tiny-lm", files="zoo_nodescription:weights/tiny-mute"))
        """}),
}


def install_fake(root: Path, dist: str) -> Path:
    """Lay out one of BROKEN's or INCOMPLETE's plugins as an installed distribution under `root`."""
    entry_points, files = {**BROKEN, **INCOMPLETE}[dist]
    return make_distribution(root, dist, entry_points, files)
