"""Plugin discovery (entry-point group "zoo"): a plugin that fails to import, or whose hook raises, is skipped
with a warning and recorded with its error; every other plugin keeps working."""

from __future__ import annotations

import importlib.metadata as md
import os
import warnings
from dataclasses import dataclass, field

import pluggy

from zoo import hookspecs

HOOKS = ("register_architectures", "register_tokenizers", "register_trainers", "register_datasets", "register_pretrained")


@dataclass
class PluginInfo:
    """What one plugin is and what it registered (shown by `zoo plugins`)."""

    name: str
    distribution: str
    version: str
    module: str
    hooks: list[str] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    error: str | None = None


def load_into(registry, extra: list[tuple[str, object]] = ()) -> list[PluginInfo]:
    """Discover plugins (ZOO_PLUGINS=a,b: only those distributions; empty: none) and let each register."""
    wanted = os.environ.get("ZOO_PLUGINS")
    wanted = None if wanted is None else {v.strip() for v in wanted.split(",")}
    infos = []
    # sorted, so that load order is stable
    for ep in sorted(md.entry_points(group="zoo"), key=lambda ep: (ep.dist.name if ep.dist else "", ep.name)):
        dist = ep.dist.name if ep.dist else ep.name
        if wanted is not None and dist not in wanted and ep.name not in wanted:
            continue
        info = PluginInfo(ep.name, dist, ep.dist.version if ep.dist else "", ep.value)
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not break the rest
            _fail(info, f"import failed: {type(exc).__name__}: {exc}")
        else:
            run_hooks(registry, module, info)
        infos.append(info)
    for name, obj in extra:
        info = PluginInfo(name, name, "", getattr(obj, "__name__", repr(obj)))
        run_hooks(registry, obj, info)
        infos.append(info)
    return infos


def run_hooks(registry, module, info: PluginInfo) -> None:
    """Call the plugin's hooks; commit its registrations only if all succeed."""
    pm = pluggy.PluginManager("zoo")
    pm.add_hookspecs(hookspecs)
    staged: list[tuple[str, str, object]] = []
    try:
        pm.register(module, name=info.name)
        info.hooks = [h for h in HOOKS if getattr(pm.hook, h).get_hookimpls()]
        for hook in info.hooks:
            kind = hook.removeprefix("register_")
            getattr(pm.hook, hook)(register=_stager(staged, kind))
    except Exception as exc:
        _fail(info, f"hook failed: {type(exc).__name__}: {exc}")
        return
    for kind, name, target in staged:
        try:
            registry.add(kind, name, target, plugin=info.distribution)
        except Exception as exc:
            _fail(info, str(exc))
            continue
        info.registered.append(f"{kind[:-1] if kind.endswith('s') else kind}:{name}")


def _stager(staged, kind):
    def register(name_or_spec, target=None):
        name = getattr(name_or_spec, "name", name_or_spec)
        if not isinstance(name, str) or not name:
            raise TypeError(f"register() needs a name string, got {name_or_spec!r}")
        staged.append((kind, name, name_or_spec if target is None else target))

    return register


def _fail(info: PluginInfo, message: str) -> None:
    info.error = message if info.error is None else f"{info.error}; {message}"
    warnings.warn(f"zoo plugin {info.distribution!r} skipped: {message}", RuntimeWarning, stacklevel=3)
