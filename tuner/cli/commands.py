"""What each `tuner` command does: parse nothing, print results; the package does the work. Only the
commands that need torch or Ray import them, so --help, `tuner list` and `tuner results` answer at once."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from tuner.cli.sweep_args import settings_from
from tuner.core.constants import RESULTS_DIR
from tuner.search.settings import check_seed

if TYPE_CHECKING:
    from tuner.run.sweep import SweepOutcome
    from tuner.search.settings import SweepSettings


def cmd_sweep(args: argparse.Namespace) -> int:
    # Flags are checked before Ray is even imported: a refusal comes at once.
    settings = None if args.resume else settings_from(args)
    from tuner.run.cluster import disconnect
    from tuner.run.fit import term_as_interrupt
    from tuner.run.sweep import resume_sweep, run_sweep

    with term_as_interrupt():  # SIGTERM ends a sweep as Ctrl-C does (and again around Ray's fit)
        try:
            if args.resume:
                outcome = resume_sweep(args.resume, args.storage or RESULTS_DIR, args.address)
            else:
                outcome = run_sweep(settings)
        except KeyboardInterrupt:  # a later Ctrl-C or SIGTERM, after Ray had stopped: the record holds every epoch
            outcome = _late_interrupt(args, settings)
        finally:
            disconnect()  # before the tables are printed: a SIGTERM after this is a plain Ctrl-C
    if outcome is None:
        return 130
    if outcome.discarded:
        print(
            f"interrupted before any epoch ended: nothing to keep, so {outcome.experiment_dir} was removed; "
            "run the same command to start again"
        )
        return 130
    try:
        return _print_outcome(outcome)
    except KeyboardInterrupt:  # the sweep's files were all written before this
        if outcome.interrupted:
            raise
        print(f"\ninterrupted after the sweep finished: its results are complete; see {outcome.command('results')}")
        return 130


def _print_outcome(outcome: SweepOutcome) -> int:
    from tuner.results.leaderboard import leaderboard, render

    summary = outcome.summary
    print()
    if summary is not None and summary.best is not None:
        print(render(leaderboard(summary.trials), "table"))
        print(f"\nbest: trial {summary.best['trial_id']}, val PSNR {summary.best['metrics']['val_psnr']:.2f} dB")
        print(f"files: {outcome.experiment_dir}/{{trials.csv,history.csv,best.json,best_model.pt}}")
    elif not outcome.interrupted:
        print(f"no trial finished an epoch; see {outcome.experiment_dir}")
        return 1
    if outcome.interrupted:
        print(f"interrupted: nothing is lost; continue with  {outcome.command('sweep --resume')}")
        return 130
    print(
        f"next: {outcome.command('results')} | {outcome.command('report')} | "
        f"{outcome.command('export')} --format onnx --out DIR"
    )
    return 0


def _late_interrupt(args: argparse.Namespace, settings: SweepSettings | None) -> SweepOutcome | None:
    """What to say after an interrupt that came once Ray had stopped (while the tables, the tracking or the
    benchmark were written): the resume hint as usual, or, for a sweep that had finished, where its results
    are. None once said; the interrupt itself when there is no experiment yet to speak of. A new sweep stopped
    before its fit began (Ray could not resume it) is removed, so the same command starts it again."""
    from tuner.core.errors import TunerError
    from tuner.results.experiments import find_experiment
    from tuner.results.state import experiment_lock, read_state, written_here
    from tuner.run.resume import discard_if_nothing_ran
    from tuner.run.sweep import SweepOutcome

    name, storage = (args.resume, args.storage or RESULTS_DIR) if args.resume else (settings.name, settings.storage)
    try:
        exp_dir = find_experiment(name, storage)
    except TunerError:
        if args.resume:
            raise KeyboardInterrupt from None  # main() says so
        print("interrupted before the sweep's folder was made: nothing to keep; run the same command to start")
        return None
    if not args.resume and written_here(exp_dir):  # this process's new sweep, stopped before its fit began
        try:
            with experiment_lock(exp_dir):
                if discard_if_nothing_ran(exp_dir):
                    return SweepOutcome(exp_dir, None, interrupted=True, discarded=True)
        except TunerError:
            raise KeyboardInterrupt from None
    outcome = SweepOutcome(exp_dir, None, interrupted=read_state(exp_dir) != "finished")
    if outcome.interrupted:
        return outcome  # cmd_sweep prints the resume hint
    print(f"interrupted after the sweep finished: its results are complete; see {outcome.command('results')}")
    return None


def cmd_list(args: argparse.Namespace) -> int:
    from tuner.results.experiments import list_experiments
    from tuner.results.leaderboard import render

    print(render(list_experiments(args.storage), args.format))
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from tuner.results.experiments import load_experiment
    from tuner.results.leaderboard import leaderboard, render

    exp = load_experiment(args.experiment, args.storage)
    trials = exp.trials
    if args.pareto:
        from tuner.results.pareto import non_dominated

        trials = non_dominated(trials)
    shown = leaderboard(
        trials,
        args.sort,
        args.descending,
        args.top,
        args.columns,
        args.status,
    )
    print(render(shown, args.format))
    if args.format == "table":
        front = f", {len(trials)} on the fidelity-speed front" if args.pareto else ""
        print(f"\n{exp.name}: {len(exp.trials)} trials{front}, {exp.state_text}")
        if args.pareto and exp.info.get("teacher_speed"):
            from tuner.results.pareto import answer

            print("\n".join(answer(exp.trials, exp.info["teacher_speed"])))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tuner.results.experiments import load_experiment
    from tuner.results.report import write_report

    print(f"wrote {write_report(load_experiment(args.experiment, args.storage))}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tuner.inference.export import export_model, verification_images
    from tuner.results.experiments import load_experiment

    exp = load_experiment(args.experiment, args.storage)
    trial = args.trial
    if args.fastest_above is not None:  # the fastest model that is good enough, from a --pareto sweep
        from tuner.results.pareto import fastest_above

        trial = str(fastest_above(exp.trials, args.fastest_above)["trial_id"])
    checkpoint, model_file = exp.checkpoint_bytes(trial)
    images = verification_images(exp, args.images)
    report = export_model(model_file, args.format, Path(args.out), images, trial, args.force, checkpoint)
    print(f"wrote {report.path} ({report.format}) from {checkpoint}")
    print(
        f"verified on {report.fidelity.images} held-out images: max |export - checkpoint| = {report.max_abs_diff:.1e} "
        f"(tolerance {report.tolerance:.0e}); PSNR against the teacher {report.fidelity.psnr:.2f} dB"
    )
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from tuner.inference.benchmark import QUICK, BenchmarkOptions
    from tuner.inference.variants import KINDS
    from tuner.run.benchmark import benchmark_named
    from tuner.run.cluster import disconnect
    from tuner.run.fit import term_as_interrupt

    options = BenchmarkOptions(
        device=args.device,
        batch_sizes=args.batch_sizes,
        min_run_time=args.min_run_time,
        cpus=args.cpus,
        kinds=QUICK if args.quick else KINDS,
        artifacts=tuple(args.artifact or ()),
    )
    with term_as_interrupt():  # SIGTERM stops it as Ctrl-C does: "interrupted", exit 130
        try:
            benchmark_named(args.experiment, options, args.storage, args.dataset, args.size, args.address)
        finally:
            disconnect()
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    check_seed(args.seed)  # the same check as `tuner sweep --seed`, before torch is imported
    from tuner.core.errors import ExperimentError
    from tuner.inference.evaluate import fidelity_on_dataset
    from tuner.results.experiments import find_experiment, load_experiment

    target, data_dir = Path(args.model), None
    if not os.path.isfile(target):  # False, not OSError, for a name longer than the system allows
        try:
            exp_dir = find_experiment(args.model, args.storage)
        except ExperimentError:
            raise ExperimentError(
                f"{args.model!r} is neither a model file nor an experiment; run `tuner list` or pass a .pt/.onnx path"
            ) from None
        exp = load_experiment(exp_dir)
        target, data_dir = exp.checkpoint(), exp.settings.data_dir  # where that sweep found CIFAR-10
    source, fid = fidelity_on_dataset(target, args.dataset, args.size, args.seed, data_dir)
    print(f"{target} on {source}: {fid.images} images, MSE {fid.mse:.3g}, PSNR {fid.psnr:.2f} dB against the teacher")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from tuner.results.dashboard import serve

    serve(args.experiment, args.storage, args.host, args.port)
    return 0
