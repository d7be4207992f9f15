"""`privagg` command line: run, budget (and audit, sweep, report).

Only typer and rich are imported at the top: each command imports what it needs, so `--help`,
`--version` and `budget` never pay for torch. Every privagg error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from fl_core.types import RoundRecord

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Privacy-preserving federated learning.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
err_console = Console(stderr=True)

QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print only the result lines (no config, no per-round lines).")
]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")]


def _version(value: bool) -> None:
    if value:
        from privagg import __version__

        typer.echo(f"privagg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """privagg: federated learning with secure aggregation, differential privacy and audits."""


def _round_line(rec: RoundRecord) -> str:
    metric = " ".join(f"{k} {v:.4f}" for k, v in rec.test.items())
    return (
        f"round {rec.round:>3} | clients {rec.completed}/{rec.sampled} drop {rec.dropped} rej {rec.rejected} "
        f"| train loss {rec.train_loss:.4f} | test {metric} | up {rec.bytes_up / 1e3:.0f} kB "
        f"down {rec.bytes_down / 1e3:.0f} kB"
    )


@app.command()
def run(
    config: Annotated[Path | None, typer.Argument(help="TOML config; omit for the default job.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Override: section.key=value.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run folder (default runs/NAME-TIME).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run folder.")] = False,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue an interrupted run from its last checkpoint: NAME.partial."),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Run one experiment and write its run folder (or --resume an interrupted one)."""
    import tomli_w
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fl_core.config import load_config
    from fl_core.errors import RunDirectoryError
    from fl_core.experiment import run_experiment

    console = Console()
    if resume is not None:
        if config is not None or set_ or out is not None:
            raise typer.BadParameter("--resume takes the run's own config: give no CONFIG, --set or --out")
        if not resume.name.endswith(".partial"):
            what = f"--resume expects an unfinished run folder NAME.partial, got {str(resume)!r}"
            raise RunDirectoryError(what)
        out = resume.with_name(resume.name[: -len(".partial")])
        config = resume / "config.toml"
    cfg = load_config(config, set_ or [])
    if not quiet:
        console.rule("[bold]privagg run: resolved config")
        console.print(tomli_w.dumps(cfg.to_dict()), markup=False, highlight=False)
    folder = out or Path("runs") / f"{cfg.run.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            fl_task = progress.add_task("federated rounds", total=cfg.run.rounds)
            cen_task = None

            def on_round(rec: RoundRecord) -> None:
                if not quiet:
                    progress.console.print(_round_line(rec), markup=False, highlight=False, soft_wrap=True)
                progress.advance(fl_task)

            def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
                nonlocal cen_task
                if cen_task is None:
                    cen_task = progress.add_task("centralized baseline", total=None)
                progress.advance(cen_task)

            result = run_experiment(
                cfg,
                out=folder,
                overwrite=overwrite,
                resume=resume is not None,
                on_round=on_round,
                on_centralized_epoch=on_epoch,
            )
        summary = result.summary()
        path = result.run_dir
    except RunDirectoryError:
        raise
    except BaseException:
        partial = folder.with_name(folder.name + ".partial")
        if partial.exists():
            err_console.print(f"run incomplete; what it produced is in {partial}", markup=False)
        raise
    key = summary["primary_metric"]
    line = f"done: FL {key}={summary['fl'][key]:.4f}"
    if summary.get("centralized"):
        line += f"  centralized {key}={summary['centralized'][key]:.4f}"
        reach = summary["rounds_to_95pct_centralized"]
        line += f"  rounds to 95% of centralized: {reach if reach is not None else 'not reached'}"
    console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(f"privacy: {result.privacy['statement']}", markup=False, highlight=False, soft_wrap=True)
    if summary.get("stopped"):
        console.print(f"stopped early: {summary['stopped']}", markup=False, highlight=False, soft_wrap=True)
    if result.privacy.get("warning"):
        console.print(f"warning: {result.privacy['warning']}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"run folder: {path}", markup=False, highlight=False)


@app.command()
def budget(
    sampling_rate: Annotated[
        float, typer.Option("--sampling-rate", "--rate", help="Poisson sampling rate q.")
    ],
    rounds: Annotated[int, typer.Option("--rounds", "-r", help="Number of rounds (or DP-SGD steps).")],
    delta: Annotated[float, typer.Option("--delta", "-d", help="Target delta.")] = 1e-5,
    noise_multiplier: Annotated[
        float | None, typer.Option("--noise-multiplier", "-z", help="Epsilon for this noise multiplier.")
    ] = None,
    target_epsilon: Annotated[
        float | None, typer.Option("--target-epsilon", "-e", help="Noise multiplier for this epsilon.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Accounting without training: epsilon for a noise multiplier, or the noise for a target epsilon.

    Both by PLD (the number privagg reports) and RDP (a cross-check; always >= PLD up to discretization).
    """
    import json

    from rich.table import Table

    from dp.accountant import epsilon_for
    from dp.calibration import calibrate_noise

    if (noise_multiplier is None) == (target_epsilon is None):
        raise typer.BadParameter("give exactly one of --noise-multiplier and --target-epsilon")
    out: dict[str, object] = {"sampling_rate": sampling_rate, "rounds": rounds, "delta": delta}
    if noise_multiplier is not None:
        out["noise_multiplier"] = noise_multiplier
        out["epsilon_pld"] = epsilon_for(noise_multiplier, sampling_rate, rounds, delta, method="pld")
        out["epsilon_rdp"] = epsilon_for(noise_multiplier, sampling_rate, rounds, delta, method="rdp")
    else:
        target = float(target_epsilon or 0.0)
        out["target_epsilon"] = target
        z_pld = calibrate_noise(target, delta, sampling_rate, rounds, method="pld")
        z_rdp = calibrate_noise(target, delta, sampling_rate, rounds, method="rdp")
        out["noise_multiplier_pld"] = z_pld
        out["noise_multiplier_rdp"] = z_rdp
        out["epsilon_pld_at_pld_noise"] = epsilon_for(z_pld, sampling_rate, rounds, delta, method="pld")
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    table = Table(title="privagg budget (Poisson-sampled Gaussian, add/remove neighbours)")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, val in out.items():
        table.add_row(key, f"{val:.6g}" if isinstance(val, float) else str(val))
    Console().print(table)


@app.command()
def audit(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder (privagg run --out ...).")],
    attacks: Annotated[
        str | None,
        typer.Option("--attacks", "-a", help="Comma-separated audits (default: every one that fits)."),
    ] = None,
    shadows: Annotated[
        int, typer.Option("--shadows", help="Shadow models for LiRA / reference models for RMIA.")
    ] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the attacks' own randomness.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print audit.json instead of a summary.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Attack a finished run; write audit.json, audit.md and plots into it (empirical vs proven epsilon)."""
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from audits import audit_run

    chosen = [a.strip() for a in attacks.split(",") if a.strip()] if attacks else None
    console = Console(stderr=as_json)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=quiet or as_json) as progress:
        tasks: dict[str, int] = {}

        def on_progress(done: int, total: int, what: str) -> None:
            if what not in tasks:
                tasks[what] = progress.add_task(what, total=total)
            progress.update(tasks[what], completed=done, total=total)

        report = audit_run(run_dir, attacks=chosen, shadows=shadows, progress=on_progress, seed=seed)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    out = Console()
    out.print((run_dir / "audit.md").read_text(encoding="utf-8") if not quiet else "", markup=False)
    out.print(f"audit written to {run_dir / 'audit.json'} and {run_dir / 'audit.md'}", markup=False)


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(help="SWEEP.toml: a base config, a [grid] of keys, seeds.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Sweep folder (resumed when it exists).")],
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", help="Worker processes (default: one per core).")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Run a grid of configs in parallel, one run folder each; an interrupted sweep resumes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from audits.sweep import load_spec, run_sweep

    console = Console()
    total = len(load_spec(spec).points)  # validates every point before anything runs
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("sweep points", total=total)

        def on_point(p: object) -> None:
            point = p.point  # type: ignore[attr-defined]
            progress.update(task, completed=p.finished)  # type: ignore[attr-defined]
            if not quiet:
                note = f": {point.error}" if point.error else ""
                progress.console.print(f"{point.status:>7} {point.name}{note}", markup=False, highlight=False)

        result = run_sweep(spec, out, jobs=jobs, progress=on_point)
    console.print(
        f"sweep: {len(result.ran)} ran, {len(result.skipped)} already done, {len(result.failed)} failed; "
        f"folder {result.out} (privagg report {result.out})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if result.failed:
        raise typer.Exit(1)


@app.command()
def report(
    paths: Annotated[list[Path], typer.Argument(help="Sweep folders, run folders, or folders holding them.")],
    out: OutOpt = None,
    target_accuracy: Annotated[
        float | None, typer.Option("--target-accuracy", help="Recommend the most private one reaching it.")
    ] = None,
    target_epsilon: Annotated[
        float | None, typer.Option("--target-epsilon", help="Recommend the most accurate setting within it.")
    ] = None,
) -> None:
    """Privacy-utility tradeoff report: report.html (self-contained), report.md and results.csv."""
    from audits.report import build_report

    html = build_report(paths, out, target_accuracy=target_accuracy, target_epsilon=target_epsilon)
    Console().print(f"report: {html} (report.md and results.csv beside it)", markup=False)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: privagg's typed errors become one line on stderr and exit code 2."""
    try:
        rv = app(args=argv, standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted", markup=False)
        return 130
    except Exception as exc:
        from privagg.errors import user_errors

        if isinstance(exc, user_errors()):
            err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            return 2
        code = getattr(exc, "exit_code", None)  # click usage errors carry their own exit code
        if code is not None and hasattr(exc, "show"):
            exc.show()
            return int(code)
        raise
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
