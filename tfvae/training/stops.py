"""How a training run stops short: the loss turned non-finite, or a stop signal arrived. Each
says what was kept and the way to go on, true in the state it is raised in."""

from tfvae.errors import call, render
from tfvae.interruption import Interrupted


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    def __str__(self):
        return render(super().__str__())


class TrainingInterrupted(Interrupted):
    """A stop signal (SIGTERM, SIGINT) ended training; the run records "interrupted" and resumes
    from its last finished epoch."""

    def __init__(self, signum, run_dir, epochs_completed, epochs):
        if epochs_completed:
            next_step = (f"{epochs_completed} of {epochs} epochs are kept; continue with: "
                         + call("train", run_dir=str(run_dir), resume=True))
        else:
            next_step = ("no epoch had finished, so there is nothing to resume; start again "
                         f"with: {call('train', run_dir=str(run_dir), overwrite=True)} (and the "
                         "same settings)")
        super().__init__(signum, next_step)
        self.run_dir, self.epochs_completed, self.epochs = run_dir, epochs_completed, epochs


def diverged_message(run, epoch):
    """Why training stopped at ``epoch`` and how to start again, true whether or not a
    checkpoint was written (a resume keeps the run's learning rate, so it is no way out)."""
    last = run.checkpoint_path("last")
    kept = (f"the last good checkpoint is kept in {last}" if last.is_file()
            else "no checkpoint was written before it")
    return (f"the loss became NaN or infinite at epoch {epoch}; {kept}. Start again with a "
            "smaller learning rate: "
            + call("train", run_dir=str(run.path), overwrite=True, learning_rate="LR")
            + " and the run's other settings")
