"""What a strategy will spend, predicted from a pass-rate profile before any training run
(`pcbench plan CONFIG --profile FILE`).

The model: every prompt a step draws is fresh, its pass rate p drawn from the profile's fitted
distribution (`algos.passrates.Mixture`), and every rollout of it is correct with probability p,
independently. Then:

- GRPO (and Knapsack-RL, MoPPS, whose one-pass allocation has no history to use: every prompt
  unknown, n each; a uniform Beta prior, a random pick): B × n rollouts a step; a group is
  informative (rewards not all equal) with probability 1 − E[p^n + (1 − p)^n]. Closed form.
- DAPO: rounds of G prompts × n until B informative groups: E[rounds] = Σ_r P(Bin(rG, m) < B)
  with m the mixed share at n. Closed form (binomial sums).
- Pilot-Commit (the paper's rule): per round, G pilots of n_pilot; a prompt is kept when k/n_pilot
  is in the band (binomial sums give the keep, too-easy, too-hard and evict shares); the
  round structure — commits taken from the buffer in the same call as the round's pilots, the
  batch filled across steps, the buffer's order and staleness — is played out by Monte Carlo
  over `steps` simulated steps. Its closed-form long-run value, max(1, B / (G × keep share))
  rounds a step, is given beside it and ranks the settings of `best_pilot`.
- GRESO in its first pass (no trace yet, so no skip): its rounds, sized by its own next-round
  rule, by Monte Carlo.

What the model leaves out, said in every prediction's `caveats`: the policy changes over
training (the profile is one moment; a profile from a run's own rollouts averages over it),
later epochs (eviction and deferral change which prompts come back; history rules skip), the
sequential pilot's and value-per-cost's adaptive sizes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from pcbench.algos import greso
from pcbench.algos.passrates import Mixture, binomial_pmf
from pcbench.config import RunConfig

ONE_PASS_AS_GRPO = ("grpo", "knapsack", "mopps")


@dataclass(frozen=True)
class Prediction:
    strategy: str
    setting: str  # the numbers that decide it, in words
    rollouts_per_step: float | None
    rounds_per_step: float | None
    mixed_share: float | None  # share of trained groups whose rewards differ
    per_informative: float | None  # generated rollouts per informative trained rollout
    keep_share: float | None = None  # Pilot-Commit: shares of piloted prompts
    too_easy_share: float | None = None
    too_hard_share: float | None = None
    evict_share: float | None = None
    rounds_closed_form: float | None = None  # Pilot-Commit: max(1, B / (G x keep share))
    over_max_rounds: float | None = None  # P(a step needs more than max_rounds rounds)
    method: str = "closed form"
    caveats: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self) | {"caveats": "; ".join(self.caveats)}


def predict(
    cfg: RunConfig, mixture: Mixture, *, split_prompts: int | None = None, steps: int = 4000,
    seed: int = 0,
) -> Prediction:  # fmt: skip
    """The prediction for `cfg` on prompts whose pass rates follow `mixture`. `split_prompts`:
    the training split's size, to say when a run passes over it more than once."""
    caveats = ["one moment of the policy: drift over training is not modelled"]
    passes = _passes(cfg, split_prompts)
    if passes is not None and passes > 1:
        caveats.append(f"~{passes:.1f} passes over the split: later epochs (eviction, deferral, "
                       "history) are not modelled, every prompt is taken as fresh")  # fmt: skip
    if cfg.strategy in ONE_PASS_AS_GRPO:
        if cfg.strategy != "grpo":
            caveats.append(f"{cfg.strategy} as in its first pass: no history, GRPO's allocation")
        return _grpo(cfg, mixture, tuple(caveats))
    if cfg.strategy == "dapo":
        return _dapo(cfg, mixture, tuple(caveats))
    if cfg.strategy == "greso":
        caveats.append("GRESO in its first pass: no trace, no skip")
        return _greso(cfg, mixture, tuple(caveats), steps, seed)
    if cfg.strategy == "pilot_commit":
        unmodelled = _pc_unmodelled(cfg)
        if unmodelled:
            return Prediction("pilot_commit", _pc_setting(cfg), None, None, None, None,
                              method="not modelled", caveats=(*caveats, unmodelled))  # fmt: skip
        return _pilot_commit(cfg, mixture, tuple(caveats), steps, seed)
    raise ValueError(f"plan: no model of strategy {cfg.strategy!r}")


def _passes(cfg: RunConfig, split_prompts: int | None) -> float | None:
    if split_prompts is None:
        return None
    per_step = {"grpo": cfg.batch_prompts, "knapsack": cfg.batch_prompts,
                "mopps": cfg.mopps.candidate_ratio * cfg.batch_prompts}.get(
        cfg.strategy, cfg.pool_prompts)  # fmt: skip
    return cfg.steps * per_step / split_prompts


def _grpo(cfg: RunConfig, m: Mixture, caveats) -> Prediction:
    B, n = cfg.batch_prompts, cfg.group_size
    mixed = m.mixed(n)
    return Prediction(cfg.strategy, f"B {B} x n {n}", B * n, 1.0, mixed,
                      1 / mixed if mixed else None, caveats=caveats)  # fmt: skip


def _binomial_below(trials: int, p: float, count: int) -> float:
    """P(Binomial(trials, p) < count)."""
    if count <= 0:
        return 0.0
    return float(binomial_pmf(np.arange(min(count, trials + 1)), trials, p).sum())


def _dapo(cfg: RunConfig, m: Mixture, caveats) -> Prediction:
    B, G, n = cfg.batch_prompts, cfg.pool_prompts, cfg.group_size
    mixed = m.mixed(n)
    if mixed <= 0:
        return Prediction("dapo", f"rounds of G {G} x n {n}", None, None, 0.0, None,
                          caveats=(*caveats, "no group is ever mixed: DAPO never fills a batch"))  # fmt: skip
    # E[R] = sum over r >= 0 of P(R > r) = P(fewer than B mixed groups in r rounds)
    tail, rounds, r = 1.0, 0.0, 0
    while tail > 1e-12 and r < 10_000:
        tail = _binomial_below(r * G, mixed, B)
        rounds += tail
        r += 1
    over = _binomial_below(cfg.max_rounds * G, mixed, B)
    return Prediction("dapo", f"rounds of G {G} x n {n}", rounds * G * n, rounds, 1.0,
                      rounds * G / B, over_max_rounds=over, caveats=caveats)  # fmt: skip


def _pc_unmodelled(cfg: RunConfig) -> str:
    if cfg.pilot.stages:
        return "the sequential pilot's stages stop early by a prior that learns: not modelled"
    if cfg.commit.allocation != "uniform":
        return "value-per-cost commits size each prompt's group: not modelled"
    if cfg.pilot.gate != "none" or cfg.pilot.explore:
        return "the history gate and exploration act on later epochs: not modelled"
    return ""


def _pc_setting(cfg: RunConfig) -> str:
    s = cfg.score
    return (f"p{cfg.pilot.n_pilot}c{cfg.commit.n_commit}, band [{s.keep_min:g}, {s.keep_max:g}], "
            f"G {cfg.pool_prompts}, B {cfg.batch_prompts}")  # fmt: skip


@dataclass(frozen=True)
class PilotShares:
    """Where a pilot of `n_pilot` sends a fresh prompt, and the trained group it makes."""

    keep: float
    too_easy: float
    too_hard: float
    evict: float
    mixed_given_kept: float  # P(the pilot + commit group's rewards differ | kept)


def pilot_shares(
    m: Mixture, n_pilot: int, n_commit: int, keep_min: float, keep_max: float,
    evict_at: float = 1.0,
) -> PilotShares:  # fmt: skip
    """Binomial sums over the mixture (verdicts with the code's 1e-9 of slack)."""
    counts = m.pilot_counts(n_pilot)
    a = np.arange(n_pilot + 1) / n_pilot
    kept = (a >= keep_min - 1e-9) & (a <= keep_max + 1e-9)
    keep = float(counts[kept].sum())
    # a kept group is all-equal only if its pilot was (k = 0 or n_pilot kept) and so are commits
    same = 0.0
    if kept[0]:
        same += float(m.w @ (1 - m.p) ** (n_pilot + n_commit))
    if kept[-1]:
        same += float(m.w @ m.p ** (n_pilot + n_commit))
    return PilotShares(
        keep=keep, too_easy=float(counts[a > keep_max + 1e-9].sum()),
        too_hard=float(counts[a < keep_min - 1e-9].sum()),
        evict=float(counts[a >= evict_at - 1e-9].sum()) if evict_at <= 1 else 0.0,
        mixed_given_kept=1 - same / keep if keep > 0 else 0.0,
    )  # fmt: skip


def simulate_rounds(
    m: Mixture, cfg: RunConfig, steps: int = 4000, seed: int = 0
) -> tuple[np.ndarray, float]:
    """Play Pilot-Commit's rounds for `steps` steps: per step, the rounds it took; and the mean
    age (steps) of a committed pilot. Each round commits up to the batch's missing prompts from
    the buffer (by its order: highest pilot std first, the most recent on a tie; or random)
    in the same call as the pilots of G fresh prompts, whose kept ones join the buffer after
    it; after a step, pilots older than max_staleness steps are dropped. Pure (seeded)."""
    rng = np.random.default_rng(seed)
    B, G, n_p = cfg.batch_prompts, cfg.pool_prompts, cfg.pilot.n_pilot
    s = cfg.score
    counts = m.pilot_counts(n_p)
    a = np.arange(n_p + 1) / n_p
    kept_k = (a >= s.keep_min - 1e-9) & (a <= s.keep_max + 1e-9)
    buffer: list[tuple[float, int, int]] = []  # (pilot std, added step, arrival order)
    order, rounds, ages = 0, np.zeros(steps, int), []
    for step in range(steps):
        have = 0
        while have < B:
            rounds[step] += 1
            need = B - have
            if cfg.commit.order == "random":
                rng.shuffle(buffer)
                taken, buffer = buffer[:need], buffer[need:]
            else:
                buffer.sort(key=lambda e: (e[0], e[2]), reverse=True)
                taken, buffer = buffer[:need], buffer[need:]
            have += len(taken)
            ages += [step - e[1] for e in taken]
            ks = rng.choice(n_p + 1, size=G, p=counts / counts.sum())
            for k in ks[kept_k[ks]]:
                rate = k / n_p
                buffer.append(((rate * (1 - rate)) ** 0.5, step, order))
                order += 1
        buffer = [e for e in buffer if step - e[1] <= cfg.commit.max_staleness]
    return rounds, float(np.mean(ages)) if ages else 0.0


def _pilot_commit(cfg: RunConfig, m: Mixture, caveats, steps: int, seed: int) -> Prediction:
    B, G = cfg.batch_prompts, cfg.pool_prompts
    n_p, n_c, s = cfg.pilot.n_pilot, cfg.commit.n_commit, cfg.score
    shares = pilot_shares(m, n_p, n_c, s.keep_min, s.keep_max, s.evict_at)
    if shares.keep <= 0:
        return Prediction("pilot_commit", _pc_setting(cfg), None, None, None, None,
                          keep_share=0.0, caveats=(*caveats, "no pilot lands in the band"))  # fmt: skip
    rounds, _ = simulate_rounds(m, cfg, steps, seed)
    mean_rounds = float(rounds.mean())
    per_step = mean_rounds * G * n_p + B * n_c
    trained = (cfg.commit.n_reuse if cfg.commit.n_reuse is not None else n_p) + n_c
    informative = B * trained * shares.mixed_given_kept
    return Prediction(
        "pilot_commit", _pc_setting(cfg), per_step, mean_rounds, shares.mixed_given_kept,
        per_step / informative if informative else None, keep_share=shares.keep,
        too_easy_share=shares.too_easy, too_hard_share=shares.too_hard,
        evict_share=shares.evict, rounds_closed_form=max(1.0, B / (G * shares.keep)),
        over_max_rounds=float((rounds > cfg.max_rounds).mean()),
        method=f"binomial sums; rounds by Monte Carlo over {steps} steps", caveats=caveats,
    )  # fmt: skip


def _greso(cfg: RunConfig, m: Mixture, caveats, steps: int, seed: int) -> Prediction:
    rng = np.random.default_rng(seed)
    B, n, gc = cfg.batch_prompts, cfg.group_size, cfg.greso
    mixed = m.mixed(n)
    rollouts, rounds, trained = np.zeros(steps), np.zeros(steps), np.zeros(steps)
    for step in range(steps):
        kept, size, last = 0, gc.round_prompts, False
        for _ in range(cfg.max_rounds):
            rounds[step] += 1
            rollouts[step] += size * n
            informative = rng.binomial(size, mixed)
            kept = min(B, kept + informative)
            if kept >= B or last:
                break
            size, last = greso.next_round((B - kept) * n, 1 - informative / size, n,
                                          gc.round_prompts, gc.min_round_prompts)  # fmt: skip
        trained[step] = kept * n
    return Prediction(
        "greso", f"rounds of up to {gc.round_prompts} x n {n}, B {B}", float(rollouts.mean()),
        float(rounds.mean()), 1.0, float(rollouts.sum() / trained.sum()),
        method=f"Monte Carlo over {steps} steps", caveats=caveats,
    )  # fmt: skip


# ---- choosing a split ----------------------------------------------------------------------


def best_pilot(
    m: Mixture, n: int, batch_prompts: int = 8, pool_prompts: int = 24, top: int = 10
) -> pl.DataFrame:
    """Every pilot size 2..n−1 (commit n − n_pilot) and keep band [a, b] / n_pilot with
    1 <= a <= b <= n_pilot − 1 (groups never all-equal), ranked by rollouts per informative
    rollout at the closed-form long-run rounds, max(1, B / (G keep)): the `top` best."""
    B, G = batch_prompts, pool_prompts
    rows = []
    for n_p in range(2, n):
        counts = m.pilot_counts(n_p)
        csum = np.concatenate([[0.0], np.cumsum(counts)])
        for lo in range(1, n_p):
            keep = csum[np.arange(lo, n_p) + 1] - csum[lo]  # k in [lo, hi] for hi = lo..n_p-1
            rounds = np.maximum(1.0, B / (G * np.maximum(keep, 1e-300)))
            per_step = rounds * G * n_p + B * (n - n_p)
            per_inf = per_step / (B * n)
            for hi, (q, r, x, y) in enumerate(zip(keep, rounds, per_step, per_inf, strict=True),
                                              start=lo):  # fmt: skip
                rows.append((n_p, n - n_p, lo / n_p, hi / n_p, q, r, x, y))
    table = pl.DataFrame(rows, orient="row", schema=["n_pilot", "n_commit", "keep_min",
                         "keep_max", "keep_share", "rounds", "rollouts_per_step",
                         "per_informative"])  # fmt: skip
    return table.sort("per_informative").head(top)


def plan_table(configs: list[RunConfig], m: Mixture, **kw) -> pl.DataFrame:
    """One row per config: its prediction (`predict`), as a table."""
    rows = [{"config": c.name} | predict(c, m, **kw).as_dict() for c in configs]
    return pl.DataFrame(rows, infer_schema_length=None)


# ---- the regime map --------------------------------------------------------------------------


def with_uninformative_share(m: Mixture, n: int, share: float) -> Mixture | None:
    """`m` with its pass rates between 0 and 1 scaled by one factor (the masses at 0 and 1 taking
    up the rest in their own proportion) so that a GRPO group of n is all-equal with probability
    `share`; None where no such scaling exists (share below m's own at all-interior)."""
    p, w = m.p, m.w
    interior = (p > 0) & (p < 1)
    inner, ends = w[interior].sum(), w[~interior].sum()
    if inner <= 0 or ends <= 0:
        return None

    def mixed_at(scale: float) -> Mixture:
        v = np.where(interior, w * scale, w * (1 - scale * inner) / ends)
        return Mixture(m.atoms, tuple((v / v.sum()).tolist()))

    lo, hi = 0.0, 1.0 / inner  # all-equal share falls as the scale grows
    if not mixed_at(hi).all_equal(n) <= share <= mixed_at(lo).all_equal(n):
        return None
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mixed_at(mid).all_equal(n) > share else (lo, mid)
    return mixed_at((lo + hi) / 2)


def predicted_advantage(
    m: Mixture, n: int, batch_prompts: int = 8, pool_prompts: int = 24,
    pilot_fraction: float = 0.25, band: tuple[float, float] = (0.125, 0.75),
) -> float | None:  # fmt: skip
    """A = GRPO's rollouts per informative rollout ÷ paper Pilot-Commit's at group size n
    (pilot n × pilot_fraction, closed-form long-run rounds): > 1 where PC buys informative
    rollouts cheaper."""
    n_p = max(1, round(n * pilot_fraction))
    shares = pilot_shares(m, n_p, n - n_p, *band)
    mixed = m.mixed(n)
    if shares.keep <= 0 or mixed <= 0 or shares.mixed_given_kept <= 0:
        return None
    rounds = max(1.0, batch_prompts / (pool_prompts * shares.keep))
    per_step = rounds * pool_prompts * n_p + batch_prompts * (n - n_p)
    pc = per_step / (batch_prompts * n * shares.mixed_given_kept)
    return (1 / mixed) / pc


MAP_SIZES = (8, 16, 32, 64, 128, 256)
MAP_SHARES = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95


def regime_grid(m: Mixture, sizes=MAP_SIZES, shares=MAP_SHARES, **kw) -> pl.DataFrame:
    """The plan's predicted advantage A over (group size, share of GRPO groups that are
    all-equal), each point from `m` rescaled to that share (`with_uninformative_share`): the
    regime map's contour. Points no rescaling of `m` reaches are null."""
    rows = []
    for n in sizes:
        for u in shares:
            scaled = with_uninformative_share(m, n, float(u))
            adv = predicted_advantage(scaled, n, **kw) if scaled is not None else None
            rows.append({"n": n, "uninformative": float(u), "advantage": adv})
    return pl.DataFrame(rows, schema={"n": pl.Int64, "uninformative": pl.Float64,
                                      "advantage": pl.Float64})  # fmt: skip
