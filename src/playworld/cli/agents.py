"""`playworld dream RUN --data DATA --out agents/NAME`: train an agent inside a world model, score it for real."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from playworld.cli.common import threads_option, use_threads
from playworld.errors import PlayworldError


def dream_cmd(
    run: Path = typer.Argument(..., help="Run directory written by `playworld train` (any family; rssm has reward heads)."),
    data: Path = typer.Option(..., "--data", help="Dataset the start contexts come from (and rewards, for families without a reward head)."),
    out: Path = typer.Option(..., "--out", help="Agent folder to write: policy.safetensors, config.json, eval.json, metrics.jsonl."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Actor-critic updates (default 300 when --minutes is not given)."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Stop after this many wall-clock minutes of dreaming."),
    eval_episodes: int = typer.Option(10, "--eval-episodes", help="Real-world episodes for the agent and for the random policy (0: skip)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Cap on real-world episode length (default: the world's own)."),
    horizon: int = typer.Option(15, "--horizon", help="Imagined steps per start context."),
    batch: int = typer.Option(32, "--batch", help="Start contexts imagined per update."),
    entropy: float = typer.Option(3e-3, "--entropy", help="Entropy bonus scale."),
    gamma: float = typer.Option(0.985, "--gamma", help="Discount per step (lower: nearer rewards count more)."),
    frame_stack: int = typer.Option(2, "--frame-stack", help="Frames the actor sees at once (pixel inputs)."),
    inputs: str = typer.Option("auto", "--inputs", help="What the actor sees: pixels (any family), latent (the model's latent state: "
                               "fast imagination; rssm), or auto (latent where the model allows it)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the start contexts, the imagination and the real-world episodes."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Checkpoint step of the run to load (default: the last)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    threads: Optional[int] = threads_option(),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train a policy purely inside a world model (Dreamer), evaluate it in the real world against random, save it.

    Example: playworld dream runs/explorer-rssm --data data/explorer --out agents/coins --minutes 10
    Then: playworld play runs/explorer-rssm --agent agents/coins
    """
    from playworld.agents.actor_critic import ActorCriticConfig
    from playworld.agents.agent import save_agent
    from playworld.agents.dream import dream, evaluate_real, write_jsonl
    from playworld.runs.checkpoints import check_run_dir, resolve_checkpoint
    from playworld.runs.load import check_dataset_matches, load_world_model, open_dataset
    from playworld.train.distributed import pick_device

    if eval_episodes < 0:
        raise PlayworldError(f"--eval-episodes must be 0 or more, got {eval_episodes}", "pass e.g. --eval-episodes 10")
    if steps is None and minutes is None:
        steps = 300
    use_threads(threads)
    check_run_dir(run)
    dataset = open_dataset(data)
    dev = pick_device(device)
    model = load_world_model(run, device=dev, checkpoint=checkpoint)
    check_dataset_matches(model.spec, dataset, f"run {run}")
    if not 0 < gamma <= 1:
        raise PlayworldError(f"--gamma must be in (0, 1], got {gamma}", "pass e.g. --gamma 0.985")
    config = ActorCriticConfig(horizon=horizon, batch=batch, entropy=entropy, gamma=gamma, frame_stack=frame_stack, inputs=inputs)
    result = dream(model, dataset, config, steps=steps, minutes=minutes, seed=seed, progress=progress,
                   cache_dir=Path(run) / "agents" / "reward_model", device=dev)
    world_options = dataset.manifest.get("world_options") or {}
    extra = {"run": str(Path(run).resolve()), "checkpoint": resolve_checkpoint(run, checkpoint).name,
             "data": str(Path(data).resolve()), "world_options": world_options,
             "steps": result.steps, "seconds": round(result.seconds, 1), "seed": seed}
    save_agent(out, result.learner.actor, model.spec, extra)
    write_jsonl(Path(out) / "metrics.jsonl", result.history)
    last = result.history[-1] if result.history else {}
    typer.echo(f"dreamed {result.steps} updates in {result.seconds:.0f}s; imagined return {last.get('imagined_return', 0):.3f}")
    typer.echo(f"agent: {out}")
    if eval_episodes > 0:
        report = evaluate_real(model.spec, result.learner.actor, world_options, episodes=eval_episodes, seed=seed,
                               max_steps=max_steps, progress=progress, model=model)
        (Path(out) / "eval.json").write_text(json.dumps(report, indent=1))
        ratio = report["ratio_to_random"]
        typer.echo(f"real world ({report['world']}, {eval_episodes} episodes): agent {report['agent']['mean']:.2f} "
                   f"vs random {report['random']['mean']:.2f}" + (f" ({ratio:.2f}x)" if ratio is not None else ""))
    typer.echo(f"next: playworld play {run} --agent {out}")


def plan_cmd(
    run: Path = typer.Argument(..., help="Run directory written by `playworld train` (a family that takes actions)."),
    goal: str = typer.Option(..., "--goal", help="IMAGE: a goal frame (.png/.jpg/.npy) at the model's resolution; or STEP: "
                             "a goal STEP steps away (explorer: the view from a cell STEP path steps away; other worlds: "
                             "the view after STEP random actions from the same start)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset the model was trained on: its world options, and the "
                                        "frame encoder that families without a latent (diffusion, genie) plan with."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Real steps to act (default: 2 STEP + 2, or 20 for an image)."),
    method: str = typer.Option("cem", "--method", help="cem or mppi."),
    representation: str = typer.Option("auto", "--representation", help="What is compared with the goal: latent (the "
                                       "model's own: jepa, rssm), pixels (its frames, encoded), or auto (latent if it has one)."),
    horizon: int = typer.Option(8, "--horizon", help="Planned steps per candidate action sequence."),
    population: int = typer.Option(64, "--population", help="Candidate sequences per iteration."),
    iterations: int = typer.Option(3, "--iterations", help="CEM / MPPI refits per real step."),
    within: int = typer.Option(1, "--within", help="explorer: success when the episode ends this many cells from the goal."),
    seed: int = typer.Option(0, "--seed", help="Seeds the real world's start (and the STEP goal) and the planner."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for plan.json, goal.png and episode.mp4 (real frames)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Checkpoint step of the run to load (default: the last)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    threads: Optional[int] = threads_option(),
) -> None:
    """Reach a goal view: plan toward it inside the model (CEM / MPPI, replanning every step), act in the real world.

    Example: playworld plan runs/explorer-jepa --goal 6 --out plans/six

    Pixel families need the dataset (for the frame encoder): playworld plan runs/explorer-diffusion
    --data data/explorer --goal goal.png
    """
    # imported here, not at the top: torch and the eval stack cost seconds that `playworld --help` must not pay
    from playworld.eval.goals import plan_to_goal
    from playworld.runs.checkpoints import check_run_dir
    from playworld.runs.load import check_dataset_matches, load_world_model, open_dataset
    from playworld.train.distributed import pick_device

    use_threads(threads)
    check_run_dir(run)
    dataset = open_dataset(data) if data is not None else None
    model = load_world_model(run, device=pick_device(device), checkpoint=checkpoint)
    if dataset is not None:
        check_dataset_matches(model.spec, dataset, f"run {run}")
    result = plan_to_goal(model, goal, dataset=dataset, cache_dir=Path(run) / "eval" / "cache", steps=steps, method=method,
                          representation=representation, horizon=horizon, population=population, iterations=iterations,
                          within=within, seed=seed, out=out)
    for line in result["lines"]:
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.command("dream", rich_help_panel="4. Agents")(dream_cmd)
    app.command("plan", rich_help_panel="4. Agents")(plan_cmd)
