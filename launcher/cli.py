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

    from bevlaunch.backends.base import Backend
    from bevlaunch.backends.kubernetes import KubernetesBackend
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


class BackendName(str, Enum):
    """Where runs live (``submit`` takes it from the spec)."""

    local = "local"
    kubernetes = "kubernetes"


BackendOpt = Annotated[
    BackendName | None,
    typer.Option(
        "--backend",
        envvar="BEVLAUNCH_BACKEND",
        help="Where the run lives; --context or -n imply kubernetes.",
        show_default="local",
    ),
]
Context = Annotated[
    str | None,
    typer.Option("--context", help="kubeconfig context (kubernetes; default: the current one)."),
]
Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Kubernetes namespace (default: the context's)."),
]


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
    from bevlaunch.images.records import RECORDS_PATH, with_built_image
    from bevlaunch.loader import load_spec

    try:
        # `image: auto`: the image `build-image --push` recorded here, pinned by digest.
        return with_built_image(load_spec(spec_path), Path.cwd() / RECORDS_PATH)
    except BevlaunchError as e:
        _fail(e)


def _local(runs_root: Path) -> LocalBackend:
    from bevlaunch.backends.local import LocalBackend
    from bevlaunch.errors import BevlaunchError

    try:
        return LocalBackend(runs_root)
    except BevlaunchError as e:
        _fail(e)


def _kubernetes(context: str | None, namespace: str | None) -> KubernetesBackend:
    from bevlaunch.backends.kubernetes import KubernetesBackend

    return KubernetesBackend(context=context, namespace=namespace)


def _backend(
    backend: BackendName | None, runs_root: Path, context: str | None, namespace: str | None
) -> Backend:
    """The local backend, or the Kubernetes one when asked for (or implied by -n/--context)."""
    if backend is BackendName.kubernetes or (backend is None and (context or namespace)):
        return _kubernetes(context, namespace)
    return _local(runs_root)


def _k8s_flags(namespace: str | None, context: str | None) -> str:
    """The options that find a Kubernetes run again, for the hints we print."""
    flags = f" --backend kubernetes -n {namespace}" if namespace else " --backend kubernetes"
    return flags + (f" --context {context}" if context else "")


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
    all_ranks: Annotated[
        bool,
        typer.Option(
            "--all-ranks", help="With --watch: show every rank's lines, not just rank 0's."
        ),
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Kubernetes: delete a run of the same name first.")
    ] = False,
    runs_root: RunsRoot = Path("runs"),
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Start a run and print its name; it keeps running after this command returns."""
    from bevlaunch.errors import BevlaunchError
    from bevlaunch.spec import Backend

    job = _load(spec)
    if job.backend is Backend.KUBERNETES:
        cluster = _kubernetes(context, namespace)
        try:
            submitted = cluster.submit(job, replace_existing=replace)
        except BevlaunchError as e:
            _fail(e)
        typer.echo(submitted.name)
        ns = submitted.location.split("/")[0]
        typer.echo(f"submitted {submitted.name}: namespace {ns}", err=True)
        if not follow:
            flags = _k8s_flags(ns, context)
            typer.echo(f"follow it with: bevlaunch watch {submitted.name}{flags}", err=True)
            return
        _watch(cluster, submitted.name, all_ranks)
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
    backend: BackendOpt = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Follow a run live until it ends; exit 0 if it succeeded, 1 if not."""
    _watch(_backend(backend, runs_root, context, namespace), name, all_ranks)


def _watch(backend: Backend, name: str, all_ranks: bool) -> NoReturn:
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
    name: NameArg,
    output: Output = OutputFormat.text,
    runs_root: RunsRoot = Path("runs"),
    backend: BackendOpt = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Show the state of a run."""
    from bevlaunch.errors import BevlaunchError
    from bevlaunch.output import dump, status_lines

    try:
        run = _backend(backend, runs_root, context, namespace).status(name)
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
    backend: BackendOpt = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Print a run's log (rank 0 unless told otherwise)."""
    from bevlaunch.errors import BevlaunchError

    source = _backend(backend, runs_root, context, namespace)
    try:
        for line in source.logs(name, rank=None if all_ranks else rank, follow=follow):
            typer.echo(f"[rank {line.rank}] {line.text}" if all_ranks else line.text)
    except BevlaunchError as e:
        _fail(e)
    except KeyboardInterrupt:
        typer.echo(f"stopped following; {name} keeps running", err=True)
        raise typer.Exit(code=130) from None


@app.command()
def cancel(
    name: NameArg,
    runs_root: RunsRoot = Path("runs"),
    backend: BackendOpt = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Stop every process of a run (SIGTERM, then SIGKILL after a grace period).

    Kubernetes: deletes the run's Job, which takes its pods, Service and ConfigMap with it.
    """
    from bevlaunch.errors import BevlaunchError

    try:
        source = _backend(backend, runs_root, context, namespace)
        before = source.status(name)
        after = source.cancel(name)
    except BevlaunchError as e:
        _fail(e)
    if before.state.finished:
        typer.echo(f"{name} had already {before.state.value}; nothing to cancel", err=True)
    else:
        typer.echo(f"{name}: {after.state.value}", err=True)


@app.command("list")
def list_runs(
    output: Output = OutputFormat.text,
    runs_root: RunsRoot = Path("runs"),
    backend: BackendOpt = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """List the runs under the runs root (Kubernetes: the bevlaunch runs in the namespace)."""
    from bevlaunch.errors import BevlaunchError
    from bevlaunch.output import dump, runs_table

    try:
        runs = _backend(backend, runs_root, context, namespace).list()
    except BevlaunchError as e:
        _fail(e)
    if output is OutputFormat.text:
        _stdout().print(runs_table(runs))
    else:
        typer.echo(dump([r.to_dict() for r in runs], output), nl=False)


@app.command()
def results(
    name: NameArg,
    output: Output = OutputFormat.text,
    runs_root: RunsRoot = Path("runs"),
    backend: BackendOpt = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Print a run's metrics (results.json; Kubernetes: the metrics events of rank 0's log)."""
    from bevlaunch.errors import BevlaunchError
    from bevlaunch.output import dump, metrics_table

    try:
        data = _backend(backend, runs_root, context, namespace).results(name)
    except BevlaunchError as e:
        _fail(e)
    if output is OutputFormat.text:
        _stdout().print(metrics_table(data))
    else:
        typer.echo(dump(data, output), nl=False)


class ImageTarget(str, Enum):
    """Image targets of docker/Dockerfile (``bevlaunch.images.build.TARGETS``, not imported at
    start-up)."""

    npu = "npu"
    npu_reference = "npu-reference"
    cuda = "cuda"
    cpu = "cpu"


class BuilderName(str, Enum):
    """Image builders; left out, the first usable in this order."""

    docker = "docker"
    podman = "podman"
    buildah = "buildah"


@app.command("build-image")
def build_image(
    target: Annotated[
        ImageTarget, typer.Option("--target", "-t", help="Image target (docker/Dockerfile stage).")
    ] = ImageTarget.npu,
    push: Annotated[
        str | None,
        typer.Option(
            "--push",
            metavar="REGISTRY/REPO",
            help="Push the image there and record its digest for `image: auto`.",
        ),
    ] = None,
    builder: Annotated[
        BuilderName | None,
        typer.Option(
            "--builder",
            help="Default: the first usable of docker (with BuildKit), podman, buildah.",
            show_default=False,
        ),
    ] = None,
    build_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--build-arg",
            metavar="KEY=VALUE",
            help="Override a Dockerfile ARG, e.g. CPU_BASE_IMAGE=IMAGE (repeatable).",
        ),
    ] = None,
    network: Annotated[
        str | None,
        typer.Option("--network", metavar="MODE", help="Network of the build steps, e.g. none."),
    ] = None,
    wheelhouse: Annotated[
        Path | None,
        typer.Option(
            "--wheelhouse",
            metavar="DIR",
            help="Wheels offered to pip; with --build-arg PIP_NO_INDEX=1 the only source.",
        ),
    ] = None,
    source: Annotated[
        Path,
        typer.Option("--source", metavar="CHECKOUT", help="The bevlaunch checkout to build from."),
    ] = Path("."),
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Hide the builder's output.")
    ] = False,
) -> None:
    """Build a training image tagged with the hash of its inputs; print its name on stdout.

    An image whose tag exists is not rebuilt. With --push the digest-pinned reference
    (repo@sha256:...) is printed and recorded in .bevlaunch/images.json for `image: auto`.
    """
    from rich.markup import escape

    from bevlaunch.errors import BevlaunchError
    from bevlaunch.images.build import BuildOptions, parse_build_args
    from bevlaunch.images.build import build_image as run_build
    from bevlaunch.images.builders import BuilderKind

    err = _stderr()
    try:
        options = BuildOptions(
            root=source.resolve(),
            target=target.value,
            build_args=parse_build_args(build_arg or []),
            push=push,
            builder=None if builder is None else BuilderKind(builder.value),
            network=network,
            wheelhouse=wheelhouse,
        )
        with err.status(f"building the {target.value} image") as spinner:
            result = run_build(
                options,
                show=(lambda line: None)
                if quiet
                else (lambda line: err.print(escape(line), style="dim", highlight=False)),
                status=lambda step: spinner.update(escape(step)),
            )
    except BevlaunchError as e:
        _fail(e)
    record = result.record
    if result.cache_hit:
        typer.echo(f"cache hit: {record.image} exists; not rebuilt", err=True)
    else:
        typer.echo(f"built {record.image} in {result.seconds:.0f} s", err=True)
    if record.pinned:
        typer.echo(f"pushed {record.pushed} ({record.digest})", err=True)
    typer.echo(record.pinned or record.image)


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
