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
from pathlib import Path

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
from gateway.sluice import Action, moderate

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
    serve.set_defaults(run=_serve)

    scan = commands.add_parser("scan", help="moderate a text and print each hit")
    scan.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    scan.add_argument("--name", help="policy name when --policy is a directory")
    scan.add_argument("--direction", choices=[d.value for d in Direction], default="output")
    scan.add_argument("--json", action="store_true", help="print one JSON object")
    scan.add_argument("file", nargs="?", type=Path, help="text file (default: stdin)")
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
    test.set_defaults(run=_test)
    schema = policy_commands.add_parser("schema", help="print the policy JSON Schema")
    schema.set_defaults(run=_schema)
    return parser


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
            print(f"{compiled.file}: policy {compiled.name!r} ok ({len(compiled.rules)} rules)")
    return EXIT_OK if ok else EXIT_FAIL


def _test(args: argparse.Namespace) -> int:
    loaded = _load(args.paths)
    if loaded is None:
        return EXIT_FAIL
    total_failures = 0
    for compiled in loaded.values():
        checks, failures = run_policy_tests(compiled)
        total_failures += len(failures)
        for failure in failures:
            print(f"FAIL {failure}")
        print(f"{compiled.file}: {checks - len(failures)} passed, {len(failures)} failed")
    return EXIT_OK if total_failures == 0 else EXIT_FAIL


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(policy_json_schema(), indent=2))
    return EXIT_OK


def _scan(args: argparse.Namespace) -> int:
    loaded = _load([args.policy])
    if loaded is None:
        return EXIT_USAGE
    name = args.name or next(iter(loaded))
    if name not in loaded:
        print(f"no policy named {name!r}; loaded: {', '.join(loaded)}", file=sys.stderr)
        return EXIT_USAGE
    text = args.file.read_text(encoding="utf-8") if args.file else sys.stdin.read()
    result = moderate(loaded[name].config(Direction(args.direction)), text)
    hits = sorted(result.hits, key=lambda h: (h.start, h.end))
    if args.json:
        print(
            json.dumps(
                {
                    "policy": name,
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


def _serve(args: argparse.Namespace) -> int:
    from gateway.proxy.server import serve  # the I/O layers load only when serving
    from gateway.settings import Settings

    overrides = {
        key: value
        for key, value in {
            "host": args.host,
            "port": args.port,
            "upstream_url": args.upstream,
            "policy": args.policy,
        }.items()
        if value is not None
    }
    return serve(Settings(**overrides))
