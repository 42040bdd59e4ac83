"""``sluicegate``: serve, scan, and the policy author's check / test / schema.

Exit codes scripts can rely on: 0 success (``scan``: nothing was redacted or cut),
1 failure (``policy check``/``test`` found a problem; ``scan`` changed the text),
2 usage or load error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.classifiers import ClassifierError
from gateway.classifiers.text import TextJudge
from gateway.policy import (
    BUNDLED_DIR,
    DEFAULT_POLICY,
    CompiledPolicy,
    Direction,
    PolicyError,
    load_paths,
    policy_json_schema,
)
from gateway.policy.selftest import run_policy_tests
from gateway.sluice import Action

if TYPE_CHECKING:  # the classifier clients (and the SDK) load only when a command needs them
    from gateway.classifiers.text import TextJudge

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    result: int = args.run(args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluicegate", description="Streaming moderation gateway for OpenAI-compatible APIs."
    )
    commands = parser.add_subparsers(metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--upstream", help="upstream base URL with /v1, or 'demo'")
    serve.add_argument("--policy", type=Path, help="a policy file or a directory of them")
    serve.add_argument(
        "--workers",
        type=_workers,
        help="processes serving the port: a number, or 'auto' for one per usable CPU",
    )
    serve.add_argument(
        "--ui", action="store_true", default=None, help="serve the policy playground at /ui"
    )
    serve.set_defaults(run=_serve)

    scan = commands.add_parser("scan", help="moderate a text and print each hit")
    scan.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    scan.add_argument("--name", help="policy name when --policy is a directory")
    scan.add_argument("--direction", choices=[d.value for d in Direction], default="output")
    scan.add_argument("--json", action="store_true", help="print one JSON object")
    scan.add_argument("file", nargs="?", type=Path, help="text file (default: stdin)")
    _upstream_option(scan)
    scan.set_defaults(run=_scan)

    policy = commands.add_parser("policy", help="check, test or describe policy files")
    policy_commands = policy.add_subparsers(metavar="ACTION", required=True)
    paths_help = "policy files or directories (default: the bundled policies)"
    check = policy_commands.add_parser("check", help="validate, compile and lint")
    check.add_argument(
        "paths", nargs="*", type=Path, default=[BUNDLED_DIR], metavar="PATH", help=paths_help
    )
    check.set_defaults(run=_check)
    test = policy_commands.add_parser("test", help="run examples and tests, whole and chunked")
    test.add_argument(
        "paths", nargs="*", type=Path, default=[BUNDLED_DIR], metavar="PATH", help=paths_help
    )
    _upstream_option(test)
    test.set_defaults(run=_test)
    evaluate = commands.add_parser(
        "eval", help="precision, recall and leaks of a policy's classifiers on a labelled file"
    )
    evaluate.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    evaluate.add_argument("--name", help="policy name when --policy is a directory")
    evaluate.add_argument("--pace-ms", type=int, default=5, help="milliseconds between tokens")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("file", type=Path, help='JSON lines: {"text": ..., "flagged": bool}')
    _upstream_option(evaluate)
    evaluate.set_defaults(run=_eval)
    schema = policy_commands.add_parser("schema", help="print the policy JSON Schema")
    schema.set_defaults(run=_schema)
    return parser


def _upstream_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--upstream",
        help="where classifier rules without a url send their calls: a base URL with /v1, "
        "or 'demo' (default: SLUICEGATE_UPSTREAM_URL)",
    )


def _judge(args: argparse.Namespace) -> TextJudge:
    """Classifier rules run as the gateway would run them (``SLUICEGATE_*`` settings)."""
    from gateway.classifiers.text import TextJudge
    from gateway.settings import Settings

    settings = Settings()
    key = settings.upstream_api_key
    return TextJudge(
        args.upstream or settings.classifier_url or settings.upstream_url,
        key.get_secret_value() if key else None,
    )


def _unreachable(judge: TextJudge) -> int | None:
    """A verdict that could not be had fails the command: it must never read as a pass."""
    lines = judge.unreachable()
    for line in lines:
        print(line, file=sys.stderr)
    return EXIT_USAGE if lines else None


def _load(paths: Sequence[Path]) -> dict[str, CompiledPolicy] | None:
    try:
        return load_paths(paths)
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _check(args: argparse.Namespace) -> int:
    ok = True
    for path in args.paths:
        loaded = _load([path])
        if loaded is None:
            ok = False
            continue
        for compiled in loaded.values():
            for warning in compiled.warnings:
                print(warning, file=sys.stderr)
            broken = _unbuildable(compiled)
            ok &= not broken
            count = len(compiled.rules) + len(compiled.classifiers)
            if not broken:
                print(f"{compiled.file}: policy {compiled.name!r} ok ({count} rules)")
    return EXIT_OK if ok else EXIT_FAIL


def _unbuildable(compiled: CompiledPolicy) -> bool:
    """Classifier rules that could never give a verdict (an unset key variable, an
    unknown local classifier); built, not called, so ``check`` needs no network."""
    if not compiled.classifiers:
        return False
    from gateway.classifiers.text import TextJudge

    with TextJudge("http://upstream.invalid/v1", None) as judge:
        try:
            judge.classifiers(compiled)
        except ClassifierError as exc:
            print(f"{compiled.file}: policy {compiled.name!r}: {exc}", file=sys.stderr)
            return True
    return False


def _test(args: argparse.Namespace) -> int:
    loaded = _load(args.paths)
    if loaded is None:
        return EXIT_FAIL
    total_failures = 0
    with _judge(args) as judge:
        for compiled in loaded.values():
            checks, failures = run_policy_tests(
                compiled, partial(judge.judge, compiled) if compiled.classifiers else None
            )
            total_failures += len(failures)
            for failure in failures:
                print(f"FAIL {failure}")
            print(f"{compiled.file}: {checks - len(failures)} passed, {len(failures)} failed")
        unreachable = _unreachable(judge)
    if unreachable is not None:
        return unreachable
    return EXIT_OK if total_failures == 0 else EXIT_FAIL


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(policy_json_schema(), indent=2))
    return EXIT_OK


def _named(args: argparse.Namespace) -> CompiledPolicy | None:
    """The policy ``--policy`` and ``--name`` pick (the first loaded without a name)."""
    loaded = _load([args.policy])
    if loaded is None:
        return None
    name = args.name or next(iter(loaded))
    if name not in loaded:
        print(f"no policy named {name!r}; loaded: {', '.join(loaded)}", file=sys.stderr)
        return None
    return loaded[name]


def _scan(args: argparse.Namespace) -> int:
    compiled = _named(args)
    if compiled is None:
        return EXIT_USAGE
    text = args.file.read_text(encoding="utf-8") if args.file else sys.stdin.read()
    with _judge(args) as judge:
        result = judge.judge(compiled, compiled.config(Direction(args.direction)), text)
        unreachable = _unreachable(judge)
    if unreachable is not None:
        return unreachable
    hits = sorted(result.hits, key=lambda h: (h.start, h.end))
    if args.json:
        print(
            json.dumps(
                {
                    "policy": compiled.name,
                    "text": result.text,
                    "cut": result.cut,
                    "hits": [
                        {
                            "rule": h.rule_id,
                            "start": h.start,
                            "end": h.end,
                            "action": h.action.label,
                            "reason": h.reason.value,
                        }
                        for h in hits
                    ],
                }
            )
        )
    else:
        print(result.text)
        for h in hits:
            print(f"{h.rule_id}\t{h.start}-{h.end}\t{h.action.label}", file=sys.stderr)
    changed = result.cut or any(h.action is not Action.FLAG for h in hits)
    return EXIT_FAIL if changed else EXIT_OK


def _eval(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.evaluate import evaluate, read_cases

    compiled = _named(args)
    if compiled is None:
        return EXIT_USAGE
    try:
        cases = read_cases(args.file)
        upstream = args.upstream or _judge(args).upstream
        reports = asyncio.run(evaluate(compiled, cases, upstream, args.pace_ms))
    except (OSError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    rows = [report.as_dict() for report in reports]
    if args.json:
        print(json.dumps({"policy": compiled.name, "modes": rows}))
        return EXIT_OK
    print("| mode | cases | precision | recall | leaked chars (total) | leaked chars (max) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['mode']} | {row['cases']} | {row['precision']:.3f} | {row['recall']:.3f} "
            f"| {row['leaked_chars_total']} | {row['leaked_chars_max']} |"
        )
    return EXIT_OK


def _workers(value: str) -> int | str:
    if value == "auto":
        return value
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise argparse.ArgumentTypeError("must be a whole number from 1, or 'auto'")


def _serve(args: argparse.Namespace) -> int:
    # the I/O layers load only when serving
    from gateway.proxy.server import serve
    from gateway.proxy.supervisor import supervise, worker_count
    from gateway.settings import Settings

    overrides = {
        key: value
        for key, value in {
            "host": args.host,
            "port": args.port,
            "upstream_url": args.upstream,
            "policy": args.policy,
            "workers": args.workers,
            "ui": args.ui,
        }.items()
        if value is not None
    }
    settings = Settings(**overrides)
    workers = worker_count(settings.workers)
    return supervise(settings, workers) if workers > 1 else serve(settings)
