"""What a resume repairs on disk before Ray restores a sweep."""

from __future__ import annotations

from pathlib import Path

from tuner.learn.checkpoints import CHECKPOINT_FILE


def refill_deleted_checkpoints(exp_dir: Path, trial_ids: list[str]) -> list[Path]:
    """Before a resume: give each unfinished trial's deleted checkpoint names its newest checkpoint.

    Ray saves its experiment state every 10 s or more; a sweep killed between two saves is restored from
    the older state, which can name a checkpoint that keeping only the newest has deleted since, and Ray
    then refuses to restore the trial ("does not exist on storage anymore"). Checkpoints are numbered
    upwards, so the names it can ask for are the missing ones below the newest; each becomes a copy made
    of hard links (no extra disk) of the newest. The trial then continues from its newest epoch, which
    the checkpoint itself records. Ray writes its next checkpoints into the names after the one it
    restored, in place, so every linked name keeps holding the newest; they are left for later resumes.
    Returns the directories made.
    """
    made = []
    for trial_id in trial_ids:
        trial_dir = Path(exp_dir) / f"trial_{trial_id}"
        present = {int(d.name.removeprefix("checkpoint_")): d for d in trial_dir.glob("checkpoint_[0-9]*")}
        complete = [d for d in present.values() if (d / CHECKPOINT_FILE).is_file()]
        if not complete:
            continue
        newest = max(complete, key=lambda d: (d / CHECKPOINT_FILE).stat().st_mtime_ns)
        for index in range(max(present)):
            if index not in present:
                target = trial_dir / f"checkpoint_{index:06d}"
                target.mkdir()
                for f in newest.iterdir():
                    if f.is_file():
                        (target / f.name).hardlink_to(f)
                made.append(target)
    return made
