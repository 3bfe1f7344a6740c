"""The ``bevlaunch`` command line. Data on stdout, messages on stderr.

Exit codes: 0 success, 1 cluster or runtime failure (and a watched run that failed), 2 usage or
spec error. No traceback unless ``--debug``. Heavy imports (pydantic, yaml, rich) happen inside
the commands so ``bevlaunch --help`` starts fast; torch is never imported.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from bevlaunch.output import OutputFormat

if TYPE_CHECKING:
    from rich.console import Console

    from bevlaunch.backends.local import LocalBackend
    from bevlaunch.spec import JobSpec

app = typer.Typer(
    name="bevlaunch",
    help="Build, launch and follow BEVDepth training on Ascend NPU, GPU and CPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}

SpecArg = Annotated[Path, typer.Argument(help="The job spec (YAML).", show_default=False)]
NameArg = Annotated[str, typer.Argument(help="The run name.", show_default=False)]
RunsRoot = Annotated[
    Path,
    typer.Option(
        "--runs-root",
        envvar="BEVLAUNCH_RUNS_ROOT",
        help="Where local runs are looked up (<runs root>/<name>).",
    ),
]
Output = Annotated[OutputFormat, typer.Option("--output", "-o", help="Output format.")]


class RenderFormat(str, Enum):
    """``render`` prints manifests: YAML (kubectl's default) or JSON."""

    yaml = "yaml"
    json = "json"


def _fail(error: BaseException) -> NoReturn:
    """Report ``error`` on stderr (one line per problem) and exit with its code."""
    from bevlaunch.errors import BevlaunchError, SpecError

    if _state["debug"]:
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    lines = error.lines if isinstance(error, SpecError) else [str(error)]
    for line in lines:
        typer.echo(f"error: {line}", err=True)
    code = error.exit_code if isinstance(error, BevlaunchError) else 1
    raise typer.Exit(code=code) from None


def _stdout() -> Console:
    from rich.console import Console

    return Console(soft_wrap=True)


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True)


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """Build, launch and follow BEVDepth training on Ascend NPU, GPU and CPU."""
    _state["debug"] = debug


def _load(spec_path: Path) -> JobSpec:
    from bevlaunch.errors import BevlaunchError
    from bevlaunch.loader import load_spec

    try:
        return load_spec(spec_path)
    except BevlaunchError as e:
        _fail(e)


def _local(runs_root: Path) -> LocalBackend:
    from bevlaunch.backends.local import LocalBackend
    from bevlaunch.errors import BevlaunchError

    try:
        return LocalBackend(runs_root)
    except BevlaunchError as e:
        _fail(e)


@app.command()
def validate(spec: SpecArg) -> None:
    """Check a job spec; print a one-line summary on stderr."""
    job = _load(spec)
    res = job.resources
    typer.echo(
        f"ok: {job.name} ({job.backend.value}, {res.nodes} x {res.devices_per_node} "
        f"{res.accelerator.value}, stages {','.join(job.stages.ordered())})",
        err=True,
    )


@app.command()
def render(
    spec: SpecArg,
    output: Annotated[
        RenderFormat, typer.Option("--output", "-o", help="Output format.")
    ] = RenderFormat.yaml,
) -> None:
    """Print exactly what ``submit`` would create, without creating it.

    Kubernetes: the ConfigMap, headless Service and Indexed Job (or Volcano Job).
    Local backend: the resolved run config written to the run directory.
    """
    from bevlaunch.errors import BevlaunchError
    from bevlaunch.output import dump_yaml
    from bevlaunch.resolve import resolve_config
    from bevlaunch.spec import Backend

    job = _load(spec)
    try:
        if job.backend is Backend.KUBERNETES:
            from bevlaunch.render import render_manifests

            documents = render_manifests(job, resolve_config(job))
        else:
            documents = [resolve_config(job, base_dir=os.getcwd())]
    except BevlaunchError as e:
        _fail(e)
    if output is RenderFormat.json:
        import json

        payload = documents if len(documents) > 1 else documents[0]
        typer.echo(json.dumps(payload, indent=2))
    else:
        typer.echo(dump_yaml(documents), nl=False)


@app.command()
def submit(
    spec: SpecArg,
    follow: Annotated[
        bool, typer.Option("--watch", "-w", help="Watch the run until it ends.")
    ] = False,
    all_ranks: Annotated[bool, typer.Option("--all-ranks", help="With --watch.")] = False,
    runs_root: RunsRoot = Path("runs"),
) -> None:
    """Start a run and print its name; it keeps running after this command returns."""
    from bevlaunch.errors import BevlaunchError, ClusterError
    from bevlaunch.spec import Backend

    job = _load(spec)
    if job.backend is not Backend.LOCAL:
        _fail(
            ClusterError(
                "submitting to Kubernetes is not available yet; "
                f"`bevlaunch render {spec} | kubectl apply -f -` creates the same objects"
            )
        )
    backend = _local(runs_root)
    try:
        submitted = backend.submit(job)
    except BevlaunchError as e:
        _fail(e)
    typer.echo(submitted.name)
    location = Path(submitted.location)
    root_hint = "" if location.parent == backend.runs_root else f" --runs-root {location.parent}"
    typer.echo(f"submitted {submitted.name}: {location}", err=True)
    if not follow:
        typer.echo(f"follow it with: bevlaunch watch {submitted.name}{root_hint}", err=True)
        return
    watch_backend = backend
    if root_hint:
        watch_backend = _local(location.parent)
    _watch(watch_backend, submitted.name, all_ranks)


@app.command()
def watch(
    name: NameArg,
    all_ranks: Annotated[
        bool, typer.Option("--all-ranks", help="Show every rank's log lines, not just rank 0's.")
    ] = False,
    runs_root: RunsRoot = Path("runs"),
) -> None:
    """Follow a run live until it ends; exit 0 if it succeeded, 1 if not."""
    _watch(_local(runs_root), name, all_ranks)


def _watch(backend: LocalBackend, name: str, all_ranks: bool) -> NoReturn:
    from bevlaunch.errors import BevlaunchError
    from bevlaunch.watch import watch as watch_run

    try:
        code = watch_run(backend, name, all_ranks=all_ranks, view=_stderr(), out=_stdout())
    except BevlaunchError as e:
        _fail(e)
    except KeyboardInterrupt:
        typer.echo(f"stopped watching; {name} keeps running (bevlaunch watch {name})", err=True)
        raise typer.Exit(code=130) from None
    raise typer.Exit(code=code)


@app.command()
def status(
    name: NameArg, output: Output = OutputFormat.text, runs_root: RunsRoot = Path("runs")
) -> None:
    """Show the state of a run."""
    from bevlaunch.errors import BevlaunchError
    from bevlaunch.output import dump, status_lines

    try:
        run = _local(runs_root).status(name)
    except BevlaunchError as e:
        _fail(e)
    if output is OutputFormat.text:
        typer.echo("\n".join(status_lines(run)))
    else:
        typer.echo(dump(run.to_dict(), output), nl=False)


@app.command()
def logs(
    name: NameArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Wait for new lines until the run ends.")
    ] = False,
    rank: Annotated[int, typer.Option("--rank", "-r", help="Which rank's log.", min=0)] = 0,
    all_ranks: Annotated[
        bool, typer.Option("--all-ranks", help="Every rank's log, lines prefixed [rank N].")
    ] = False,
    runs_root: RunsRoot = Path("runs"),
) -> None:
    """Print a run's log (rank 0 unless told otherwise)."""
    from bevlaunch.errors import BevlaunchError

    try:
        for line in _local(runs_root).logs(name, rank=None if all_ranks else rank, follow=follow):
            typer.echo(f"[rank {line.rank}] {line.text}" if all_ranks else line.text)
    except BevlaunchError as e:
        _fail(e)


@app.command()
def cancel(name: NameArg, runs_root: RunsRoot = Path("runs")) -> None:
    """Stop every process of a run (SIGTERM, then SIGKILL after a grace period)."""
    from bevlaunch.errors import BevlaunchError

    backend = _local(runs_root)
    try:
        before = backend.status(name)
        after = backend.cancel(name)
    except BevlaunchError as e:
        _fail(e)
    if before.state.finished:
        typer.echo(f"{name} had already {before.state.value}; nothing to cancel", err=True)
    else:
        typer.echo(f"{name}: {after.state.value}", err=True)


@app.command("list")
def list_runs(output: Output = OutputFormat.text, runs_root: RunsRoot = Path("runs")) -> None:
    """List the runs under the runs root."""
    from bevlaunch.output import dump, runs_table

    runs = _local(runs_root).list()
    if output is OutputFormat.text:
        _stdout().print(runs_table(runs))
    else:
        typer.echo(dump([r.to_dict() for r in runs], output), nl=False)


@app.command()
def results(
    name: NameArg, output: Output = OutputFormat.text, runs_root: RunsRoot = Path("runs")
) -> None:
    """Print a run's metrics (results.json)."""
    from bevlaunch.errors import BevlaunchError
    from bevlaunch.output import dump, metrics_table

    try:
        data = _local(runs_root).results(name)
    except BevlaunchError as e:
        _fail(e)
    if output is OutputFormat.text:
        _stdout().print(metrics_table(data))
    else:
        typer.echo(dump(data, output), nl=False)


def main() -> None:
    """Console-script entry point (``bevlaunch = "bevlaunch.cli:main"``)."""
    try:
        app()
    except Exception as e:
        # Unexpected failures: one line unless --debug (tracebacks may carry secrets).
        if _state["debug"]:
            raise
        print(f"error: {type(e).__name__}: {e} (rerun with --debug for details)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
