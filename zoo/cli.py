"""The `zoo` command line. Exit codes: 0 ok, 2 user error (one line on stderr), 1 bug."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import warnings

from zoo.errors import ConfigError, ZooError

# OSErrors a user fixes (full disk, quota, read-only or forbidden folder, a bad path): one line and exit 2, no
# traceback. This one table is the CLI's whole OSError mapping, whichever command or library raised it.
_DISK_ERRNOS = {errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some disk space (quota exceeded)",
                errno.EFBIG: "the file system refused a file that large; free space or choose another folder",
                errno.EROFS: "choose a writable folder", errno.EACCES: "check the permissions or choose another folder",
                errno.EPERM: "check the permissions or choose another folder",
                errno.ENAMETOOLONG: "use a shorter file or folder name",
                errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
                errno.EISDIR: "that is a folder; give a file name",
                errno.ENOENT: "check that the path exists",
                errno.EEXIST: "something else is in the way (another zoo command at the same time?); remove it or "
                              "choose another path",
                errno.ENOTEMPTY: "another zoo command may be writing there; wait for it or choose another path",
                errno.ELOOP: "the path has a symlink loop; fix the link",
                errno.EMFILE: "too many open files; raise the limit (ulimit -n)",
                errno.EBUSY: "the file is in use; close what holds it or choose another path",
                errno.ENXIO: "that is a device or FIFO without a reader; give an ordinary file",
                errno.EXDEV: "choose a folder on the same file system"}


def finite_float(text: str) -> float:
    """An argparse type: a float that is not nan or inf (they pass every `x < 0` check and crash later)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, exit 2, like every other user error.
        self.exit(2, f"zoo: error: {message} (see {self.prog} --help)\n")


class _ModelHelp(argparse.Action):
    """-h/--help of generate and eval: after NAME, also the options NAME's model declares (no weight is read)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0,
                         help="show this help; after NAME, with that model's own options too")

    def __call__(self, parser, namespace, values, option_string=None):
        name = getattr(namespace, "name", None)
        if name:   # argparse has read the positional NAME when it comes before --help
            from zoo.loader import read_folder, resolve

            try:
                cls = read_folder(resolve(name)).cls   # from its config.json only
            except ZooError as exc:
                parser.exit(2, f"zoo: error: {one_line(exc)}\n")
            group = parser.add_argument_group(f"options of {name} (architecture {cls.arch}, declared by its plugin)",
                                              None if cls.generate_options else "none besides --num and --seed")
            _declare_options(group, cls.generate_options, with_help=True)
        parser.print_help()
        parser.exit(0)


def _declare_options(parser, options, with_help: bool = False) -> None:
    """The flags of a model's GenerateOptions on a parser (or an argument group of one)."""
    from zoo.modelinfo import option_help

    for o in options:
        flag = "--" + o.name.replace("_", "-")
        text = option_help(o.to_dict()).replace("%", "%%") if with_help else None   # argparse formats help with %
        if o.type is bool:
            parser.add_argument(flag, dest=o.name, action=argparse.BooleanOptionalAction, default=None, help=text)
            if o.flag:
                parser.add_argument(o.flag, dest=o.name, action="store_const", const=not o.default,
                                    help=f"the same as --{'no-' if o.default else ''}{o.name.replace('_', '-')}"
                                    if with_help else None)
        else:
            parser.add_argument(flag, dest=o.name, type={int: int, float: finite_float, str: str}[o.type], help=text,
                                metavar={int: "N", float: "X", str: "FILE" if o.midi_file else "TEXT"}[o.type])


# --out of release and convert: what zoo.outputs allows (docs/reliability.md, "Fourth round (issue 26), part A")
OVERWRITE_HELP = ("also replace an existing --out that holds only model files (config.json, *.safetensors, "
                  "tokenizer.json, README.md, manifest.json and what its manifest lists), even if changed; without "
                  "it, only a new or empty folder or an unchanged model folder musezoo wrote is replaced. Other "
                  "files are never deleted")
SET = {"dest": "overrides", "action": "append", "default": [], "metavar": "KEY=VALUE"}   # train, release, convert


def _device_and_threads(s) -> None:
    """--device and --threads of generate, train and eval."""
    s.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU; the default), cpu, cuda, "
                   "cuda:N, mps")
    s.add_argument("--threads", type=int, help="torch CPU threads (default: $ZOO_THREADS, else half the logical "
                   "CPUs; 1 is best on a busy 2-core machine)")


def _model_command(sub, command: str, help: str, example: str):
    """generate or eval: NAME, after which come the options NAME's model declares (see _ModelHelp)."""
    s = sub.add_parser(command, help=help, add_help=False,
                       epilog=f"After NAME come the model's own options (e.g. {example}), as its plugin declares "
                              f"them: `zoo {command} NAME --help` lists them with their defaults and ranges.")
    s.add_argument("-h", "--help", action=_ModelHelp)
    s.add_argument("name")
    _device_and_threads(s)
    return s


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (kept import-light: no torch)."""
    p = _Parser(prog="zoo", description="musezoo: a plugin model zoo for symbolic music generation")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    p.add_argument("--version", action="version", version=f"musezoo {__import__('zoo').__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("list", help="pretrained models and architectures from every installed plugin")
    s.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'musegan*'")

    s = sub.add_parser("info", help="details of a pretrained model, model folder or architecture")
    s.add_argument("name")
    s.add_argument("--json", action="store_true", help="everything as JSON (every metric row of the card, the "
                   "architecture's config and training defaults) instead of the table")

    s = sub.add_parser("plugins", help="installed plugins, what they registered, and their errors")
    s.add_argument("--check", action="store_true",
                   help="also import every class each plugin registers (imports torch); exit 2 on a problem")

    s = _model_command(sub, "generate", "generate MIDI from a pretrained name, folder or hf://org/repo[@rev]",
                       "--length 512 --temperature 0.9 for a sequence model")
    s.add_argument("-o", "--output", required=True, help="output .mid or .midi in an existing folder (several pieces: "
                   "OUT-1.mid … OUT-N.mid)")
    s.add_argument("--num", type=int, default=1, help="number of pieces (default 1)")
    s.add_argument("--seed", type=int, help="random seed: the same seed gives the same music on the same device "
                   "(another device may round differently: see the model's docs); the shipped models make piece k "
                   "of --num N the piece --seed SEED+k-1 --num 1 would make (default: a random seed)")
    s.add_argument("--dtype", help="cast weights, e.g. bf16 or fp16 (default: as saved, fp32)")
    s.add_argument("--revision", help="Hub revision for hf:// names (default: the name's @rev, else main)")
    s.add_argument("--plot", metavar="OUT.png", help="also draw a piano roll (PNG/SVG/PDF; needs musezoo[render]; "
                   "default: none)")
    s.add_argument("--render", metavar="OUT.wav", help="also render audio (needs musezoo[render] and FluidSynth: "
                   "apt-get install fluidsynth fluid-soundfont-gm; default: none)")
    s.add_argument("--soundfont", metavar="SF2", help="soundfont for --render (default: the GM soundfont of "
                   "fluid-soundfont-gm, or $ZOO_SOUNDFONT)")
    s.add_argument("--score", metavar="OUT.musicxml|OUT.pdf|OUT.png",
                   help="also write sheet music (needs musezoo[render]; PDF/PNG need LilyPond or MuseScore)")
    s.add_argument("--staves", metavar="LAYOUT", help="--score in one of the staff layouts the model declares "
                   "(zoo info NAME; default: its first, or one staff per track)")

    s = sub.add_parser("plot", help="draw a piano roll of a MIDI file (needs musezoo[render])")
    s.add_argument("midi", help="a .mid file")
    s.add_argument("-o", "--output", required=True, help="picture to write (.png, .svg or .pdf)")
    s.add_argument("--time", choices=("beats", "seconds"), default="beats", help="time axis (default beats)")
    s.add_argument("--title", help="title (default: the file name)")
    s.add_argument("--prompt", metavar="PROMPT.mid", help="the prompt the piece continues (the --prompt of zoo "
                   "generate): shade it and mark where the new music starts (default: no mark)")

    s = sub.add_parser("train", help="train an architecture (resumable; runs under torchrun)")
    s.add_argument("arch")
    s.add_argument("--data", help="data source (default: the plugin's embedded corpus)")
    s.add_argument("--out", required=True, help="run folder")
    s.add_argument("--steps", type=int, help="optimizer steps (default: the plugin's, see zoo info ARCH)")
    s.add_argument("--batch-size", type=int, help="global batch size (default: the plugin's)")
    s.add_argument("--lr", type=finite_float, help="learning rate (default: the plugin's)")
    s.add_argument("--set", **SET, help="model or training config value (repeatable)")
    s.add_argument("--config", help="JSON file of config values (a preset)")
    s.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    _device_and_threads(s)
    s.add_argument("--seed", type=int, help="random seed of the run (default 0)")
    s.add_argument("--log-every", type=int, help="plain log line every N steps (stderr)")

    s = sub.add_parser("release", help="turn a training run into a model folder to ship or push (best checkpoint, "
                       "test metrics, model card)")
    s.add_argument("run", help="a run folder (zoo train --out)")
    s.add_argument("--out", required=True, help="folder to write (Hub layout: weights, config, tokenizer, card)")
    s.add_argument("--step", type=int, help="release this checkpoint (default: the best by the plugin's validation "
                   "metric, else the newest)")
    s.add_argument("--notes", metavar="FILE.md", help="markdown appended to the model card (default: none)")
    s.add_argument("--set", **SET, help="training-config value for the release's evaluation, e.g. eval_samples=16 "
                   "(repeatable)")
    s.add_argument("--device", default="cpu", help="device for the evaluation (default cpu)")
    s.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)

    s = _model_command(sub, "eval", "metrics of generated pieces beside the held-out test data (and NLL)",
                       "--length 256")
    s.add_argument("--data", help="data source (default: the plugin's embedded test split)")
    s.add_argument("--num", type=int, default=256, help="pieces to generate (default 256)")
    s.add_argument("--seed", type=int, default=0, help="seed of the first batch (default 0)")
    s.add_argument("--batch-size", type=int, default=32, help="pieces per generate() call")
    s.add_argument("--json", help="also write the results as JSON to this file")

    s = sub.add_parser("push", help="publish a model folder or pretrained name to the Hugging Face Hub")
    s.add_argument("src", help="a saved model folder (a run's final/), a pretrained name or hf://org/repo")
    s.add_argument("repo_id", help="org/name on the Hub (created if needed)")
    s.add_argument("--revision", help="branch to push to (created from main if needed)")
    s.add_argument("--private", action="store_true", help="create the repo as private")
    s.add_argument("--message", help="commit message")
    s.add_argument("--metrics", metavar="JSON", help="metrics for the model card (the file `zoo eval --json` writes)")

    s = sub.add_parser("pull", help="download a model from the Hugging Face Hub into its cache")
    s.add_argument("repo", help="a pretrained name, or org/repo[@revision]: a branch, a tag or a commit id "
                                "(default main)")

    s = sub.add_parser("convert", help="convert a TRUSTED pickle state dict (.pt/.bin) to a safetensors folder")
    s.add_argument("src", help="the .pt/.bin/.ckpt state dict file (only ever loaded with weights_only=True)")
    s.add_argument("--arch", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--set", **SET)
    s.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    # generate and eval also take the options the model declares, known only once NAME is resolved
    args, args.model_options = parser.parse_known_args(argv)
    if args.model_options and args.command not in ("generate", "eval"):
        parser.error(f"unrecognized arguments: {' '.join(args.model_options)}")
    for flag, value in zip(["", *args.model_options], args.model_options):
        if "=" in value and value.startswith("-"):
            flag, value = value.split("=", 1)
        try:   # nan and inf pass every `x < 0` check and crash later: no model option takes them
            finite_float(value)
        except argparse.ArgumentTypeError as exc:
            if "finite" in str(exc):
                parser.error(f"argument {flag}: {exc}")
    # a skipped plugin is reported once, as one line, by `zoo list` and in full by `zoo plugins`; Python's own
    # two-line RuntimeWarning on every command would break the one-line-error contract of all the others
    warnings.filterwarnings("ignore", message="zoo plugin .* skipped", category=RuntimeWarning)
    warnings.filterwarnings("ignore", message="zoo plugin ", category=UserWarning)   # zoo list/plugins say it
    if not args.command:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args) or 0
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if isinstance(exc, ZooError):
            message = one_line(exc)
        elif isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS and not args.debug:   # the machine, not a bug
            where = f" ({printable(exc.filename)})" if exc.filename else ""
            message = (f"{one_line(exc.strerror or exc)}{one_line(where)}; {_DISK_ERRNOS[exc.errno]}, then run the "
                       f"command again")
        elif args.debug:
            raise
        else:
            import traceback

            traceback.print_exc()
            print("zoo: this is a bug in musezoo or a plugin; please report it with the traceback above",
                  file=sys.stderr)
            return 1
        rank = os.environ.get("RANK", "0").strip()
        if not rank.isdigit() or int(rank) == 0:   # torchrun's other ranks would repeat the same user error
            print(f"zoo: error: {message}", file=sys.stderr)
        return 2


def cmd_list(args) -> None:
    from zoo.registry import get_registry

    registry = get_registry()
    names = registry.names("pretrained", args.pattern)
    archs = registry.names("architectures", args.pattern)
    if names:
        print("Pretrained models:")
        for name in names:
            spec = registry.pretrained(name)
            print(f"  {name:<36} {spec.arch:<20} {spec.description}")
    if archs:
        print("Architectures:")
        for name in archs:
            print(f"  {name:<36} plugin {registry.get('architectures', name).plugin}")
    if not names and not archs:
        print(f"nothing matches {args.pattern!r}" if args.pattern != "*" else "no plugins installed")
    for info in registry.plugins:
        if info.error:
            print(f"zoo: warning: plugin {info.distribution!r} skipped: {info.error} (see zoo plugins)",
                  file=sys.stderr)
    for plugin, message in registry.warnings:
        print(f"zoo: warning: plugin {plugin!r}: {one_line(message)}", file=sys.stderr)


def cmd_info(args) -> None:
    import zoo
    from zoo.modelinfo import format_info

    facts = zoo.info(args.name)
    print(json.dumps(facts, indent=2) if args.json else format_info(facts))


def cmd_plugins(args) -> int:
    from zoo.contract import check
    from zoo.registry import get_registry

    registry = get_registry()
    if not registry.plugins:
        print("no plugins installed (entry-point group 'zoo')")
    # --check imports what each plugin registered: a missing module is one line on its plugin, not a crash
    problems = check(registry) if args.check else {}
    for info in registry.plugins:
        errors = [e for e in (info.error, *problems.get(info.distribution, ())) if e]
        status = f"ERROR: {'; '.join(errors)}" if errors else "ok"
        print(f"{info.distribution} {info.version}  ({info.module})  {status}")
        print(f"  hooks: {', '.join(info.hooks) or '-'}")
        print(f"  registered: {', '.join(info.registered) or '-'}")
        for plugin, message in registry.warnings:
            if plugin == info.distribution:
                print(f"  warning: {one_line(message)}")
    return 2 if args.check and (problems or any(info.error for info in registry.plugins)) else 0


def cmd_generate(args) -> None:
    from zoo.device import set_threads
    from zoo.limits import check_num, check_seed
    from zoo.loader import load_model, read_folder, resolve
    from zoo.midi import check_midi_name, check_output_path, output_paths, write_midi
    from zoo.progress import status

    # every number is in its range before a model is loaded (zoo.limits; docs/reliability.md "Limits")
    check_num(args.num, "--num")
    check_seed(args.seed, "--seed")
    for path in output_paths(args.output, args.num):  # a bad -o fails now, not after a long generation
        check_output_path(path)
    check_midi_name(args.output, "-o")   # MIDI data in x.wav is a file no program reads
    # --plot, --render, --score (zoo_render): checked now, written after the MIDI; the first given names the part
    given = [flag for flag in ("plot", "render", "score", "staves", "soundfont") if getattr(args, flag) is not None]
    extras = render_part("--" + given[0]).GenerateExtras(args) if given else None
    # config.json and tokenizer.json: options are checked before any weight is read
    saved = read_folder(resolve(args.name, revision=args.revision))
    options = model_options(saved.cls, args.model_options)
    if extras:
        extras.use_model(saved.cls, options)   # the staves --score engraves, the prompt --plot shades
    set_threads(args.threads)
    with status(f"loading {args.name}"):
        model = load_model(saved, device=args.device, dtype=args.dtype, generate_only=True)
    with status(f"generating {args.num} piece(s)"):
        pieces = model.generate(num=args.num, seed=args.seed, **options)
    for midi, path in zip(pieces, output_paths(args.output, len(pieces))):
        print(printable(write_midi(midi, path)))
    if extras:
        extras.write(pieces)


def model_options(cls, argv: list[str]) -> dict:
    """The model's own options from the command line (its GenerateOptions), typed and range-checked."""
    options = cls.generate_options
    parser = _Parser(prog=f"zoo generate ({cls.arch})", add_help=False)
    _declare_options(parser, options)
    values, rest = parser.parse_known_args(argv)
    if rest:
        refused = ", ".join(a.split("=")[0] for a in rest if a.startswith("-")) or " ".join(rest)
        takes = ", ".join(o.cli for o in options) or "only --num/--seed"
        raise ConfigError(f"{cls.arch} does not take {refused}; it takes: {takes} (see zoo generate NAME --help)")
    given = {o.name: getattr(values, o.name) for o in options if getattr(values, o.name) is not None}
    return cls.check_options(given, flags=True)   # the flag the user typed names a bad value


def render_part(flag: str):
    """zoo_render.cli (matplotlib, music21), imported only for `flag`; a ConfigError that says how to install it."""
    try:
        from zoo_render import cli
    except ImportError as exc:
        if exc.name not in ("zoo_render", "matplotlib", "music21"):
            raise
        raise ConfigError(f"{flag} needs musezoo's render part, which is not installed: "
                          f"pip install 'musezoo[render]'") from None
    return cli


def cmd_plot(args) -> int:
    return render_part("zoo plot").plot_command(args)


def printable(text) -> str:
    """A path for stdout or a title, undecodable bytes as \\xNN and what the terminal cannot show as \\uNNNN."""
    # print() or matplotlib would raise on a non-UTF-8 file name or PYTHONIOENCODING=ascii after the file is written
    text = str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text


def one_line(text) -> str:
    """An error message as one printable line: control characters (a crafted name can carry them) as \\n, \\x1b."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in printable(text))


def cmd_train(args) -> None:
    from zoo.train import train_from_args

    train_from_args(args)


def cmd_eval(args) -> None:
    from zoo.device import set_threads
    from zoo.evaluation import evaluate, flat, format_table
    from zoo.limits import MAX_BATCH, MAX_EVAL_NUM, check_int, check_num, check_seed
    from zoo.loader import read_folder, resolve
    from zoo.midi import check_output_path
    from zoo.safeio import write_text_atomic

    check_num(args.num, "--num", MAX_EVAL_NUM)
    check_seed(args.seed, "--seed")
    check_int(args.batch_size, "--batch-size", 1, MAX_BATCH)
    folder = resolve(args.name)   # runs/nope fails here, before anything is printed or loaded
    options = model_options(read_folder(folder).cls, args.model_options) if args.model_options else {}
    if args.json:   # a bad --json path fails now, not after the evaluation
        check_output_path(args.json, example="results.json")
    set_threads(args.threads)
    results = evaluate(args.name, num=args.num, data=args.data, device=args.device, seed=args.seed,
                       batch_size=args.batch_size, **options)
    print(format_table(results))
    if args.json:
        write_text_atomic(args.json, json.dumps(flat(results), indent=2) + "\n")


def cmd_release(args) -> None:
    from zoo.config import parse_overrides
    from zoo.device import resolve_device
    from zoo.release import release
    from zoo.safeio import read_bytes

    notes = read_bytes(args.notes, 1 << 20, what="notes file").decode("utf-8", "replace") if args.notes else None
    print(printable(release(args.run, args.out, step=args.step, notes=notes, values=parse_overrides(args.overrides),
                            device=resolve_device(args.device), overwrite=args.overwrite)))


def cmd_push(args) -> None:
    from zoo import hub

    print(hub.push_to_hub(args.src, args.repo_id, revision=args.revision, private=args.private, message=args.message,
                          metrics=args.metrics))


def cmd_pull(args) -> None:
    from zoo import hub
    from zoo.registry import get_registry

    registry = get_registry()
    if args.repo in registry.entries["pretrained"] or ("pretrained", args.repo) in registry.conflicts:
        print(hub.resolve(args.repo))  # its packaged copy if installed, else its spec's Hub repo at the pinned revision
    else:
        repo, _, rev = args.repo.partition("@")
        print(hub.pull(repo, rev or None))


def cmd_convert(args) -> None:
    from zoo.convert import convert

    print(convert(args.src, args.arch, args.out, args.overrides, overwrite=args.overwrite))


COMMANDS = {"plot": cmd_plot, "list": cmd_list, "info": cmd_info, "plugins": cmd_plugins, "generate": cmd_generate,
            "train": cmd_train, "release": cmd_release, "eval": cmd_eval, "push": cmd_push, "pull": cmd_pull,
            "convert": cmd_convert}


if __name__ == "__main__":
    sys.exit(main())
