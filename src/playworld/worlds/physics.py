"""Physics worlds after Kang et al. 2024, "How Far is Video Generation from World Model: A
Physical Law Perspective": `physics/uniform`, `physics/collision`, `physics/parabola`.

The protocol: a 10 x 10 unit world, 0.1 s per frame, 32-frame clips (31 steps), white
background, ball 1 pure red (255, 0, 0), ball 2 pure blue (0, 0, 255). Radius r and speed v are
drawn from the paper's in-distribution ranges r in [0.7, 1.5], v in [1, 4], or with ``ood=True``
from its out-of-distribution ranges r in [0.3, 0.6] or [1.5, 2.0], v in [0, 0.8] or [4.5, 6.0].

World coordinates are **y-up**: x grows to the right, y grows upwards, the world spans
[0, 10] x [0, 10] and pixel row 0 is the top (y = 10). `world_to_pixel` / `pixel_to_world`
convert between the two (pixel coordinates are (col, row) with pixel centres at +0.5).

Motion is integrated analytically, never with substeps: uniform motion is linear, the parabola
is exact under constant gravity, and collisions are event-driven (the exact contact time is
solved for inside each step, the elastic collision is applied there, and motion continues for
the rest of the step), so momentum and kinetic energy are conserved to rounding error.

State per frame (float64, world units): ``positions`` (n_balls, 2), ``velocities`` (n_balls, 2),
``radii`` (n_balls,).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from playworld.errors import PlayworldError
from playworld.spaces import ActionSpace
from playworld.worlds.base import StepResult, World, check_resolution, register_world

WORLD_SIZE = 10.0  # world units across (square)
DT = 0.1  # seconds per frame
CLIP_FRAMES = 32
GRAVITY = 2.5  # units / s^2, pointing down (-y)
RED = np.array([255, 0, 0], np.float32)
BLUE = np.array([0, 0, 255], np.float32)
COLORS = (RED, BLUE)

ID_RADIUS, ID_SPEED = [(0.7, 1.5)], [(1.0, 4.0)]
OOD_RADIUS, OOD_SPEED = [(0.3, 0.6), (1.5, 2.0)], [(0.0, 0.8), (4.5, 6.0)]


def world_to_pixel(xy: np.ndarray, resolution: int) -> np.ndarray:
    """World (x, y) (y-up, units) -> pixel (col, row) (row 0 at the top), float. Shape (..., 2)."""
    xy = np.asarray(xy, dtype=np.float64)
    s = resolution / WORLD_SIZE
    return np.stack([xy[..., 0] * s, (WORLD_SIZE - xy[..., 1]) * s], axis=-1)


def pixel_to_world(colrow: np.ndarray, resolution: int) -> np.ndarray:
    """Pixel (col, row) -> world (x, y). A mask centroid of pixel indices must add 0.5 first
    (pixel i covers [i, i+1)); `mask_centroid_world` does that for you."""
    colrow = np.asarray(colrow, dtype=np.float64)
    s = resolution / WORLD_SIZE
    return np.stack([colrow[..., 0] / s, WORLD_SIZE - colrow[..., 1] / s], axis=-1)


def mask_centroid_world(mask: np.ndarray) -> np.ndarray | None:
    """Centroid in world units of a boolean (H, W) mask (e.g. a colour mask), None when empty."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    return pixel_to_world(np.array([cols.mean() + 0.5, rows.mean() + 0.5]), mask.shape[0])


def _draw_from(rng: np.random.Generator, ranges: list[tuple[float, float]]) -> float:
    """Uniform over a union of intervals (weighted by their lengths)."""
    lengths = np.array([hi - lo for lo, hi in ranges])
    lo, hi = ranges[int(rng.choice(len(ranges), p=lengths / lengths.sum()))]
    return float(rng.uniform(lo, hi))


def _place_along(rng: np.random.Generator, distance: float, r: float) -> float:
    """Start coordinate for a ball travelling `distance` to the right over the clip: inside the
    view for the whole clip when it fits, else centred so that the middle of the clip is in view."""
    free = WORLD_SIZE - 2 * r - distance
    if free >= 0:
        return r + float(rng.uniform(0.0, free))
    return WORLD_SIZE / 2 - distance / 2


class PhysicsWorld(World):
    """Balls in a 10 x 10 world, drawn as discs on white. Subclasses choose the initial state."""

    fps = 1.0 / DT
    max_steps = CLIP_FRAMES - 1
    action_space = ActionSpace.none()
    gravity = 0.0  # units / s^2 along -y

    def __init__(self, resolution: int = 64, ood: bool = False, antialias: bool = True):
        self.resolution = check_resolution(resolution)
        self.ood = bool(ood)
        self.antialias = bool(antialias)
        self._seed_rng = np.random.default_rng()
        self.pos = self.vel = self.radii = np.zeros(0)
        self.t = 0
        # Pixel-centre coordinates in world units, shared by every draw: (N,) each.
        s = self.resolution / WORLD_SIZE
        centres = (np.arange(self.resolution) + 0.5) / s
        self._xs, self._ys = centres.astype(np.float32), (WORLD_SIZE - centres).astype(np.float32)

    # -- sampling ---------------------------------------------------------------------------------
    def _radius(self, rng: np.random.Generator) -> float:
        return _draw_from(rng, OOD_RADIUS if self.ood else ID_RADIUS)

    def _speed(self, rng: np.random.Generator) -> float:
        return _draw_from(rng, OOD_SPEED if self.ood else ID_SPEED)

    def _initial(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    # -- World API --------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        # An explicit seed re-seeds the world; seed=None draws the next episode from the world's
        # own generator, so a collection seeded once yields distinct, reproducible episodes.
        if seed is not None:
            self._seed_rng = np.random.default_rng(seed)
        rng = np.random.default_rng(self._seed_rng.integers(2**63))
        pos, vel, radii = self._initial(rng)
        self.pos, self.vel, self.radii = pos.astype(np.float64), vel.astype(np.float64), radii.astype(np.float64)
        self.t = 0
        return self.render(), self.state()

    def step(self, action: Any = 0) -> StepResult:
        self._advance(DT)
        self.t += 1
        return StepResult(self.render(), 0.0, False, self.t >= self.max_steps, self.state())

    def restore(self, state: dict[str, np.ndarray]) -> np.ndarray:
        self.pos = np.array(state["positions"], np.float64)
        self.vel = np.array(state["velocities"], np.float64)
        self.radii = np.array(state["radii"], np.float64)
        return self.render()

    def state(self) -> dict[str, np.ndarray]:
        return {"positions": self.pos.copy(), "velocities": self.vel.copy(), "radii": self.radii.copy()}

    # -- dynamics ---------------------------------------------------------------------------------
    def _drift(self, dt: float) -> None:
        """Exact free flight for dt seconds under constant gravity."""
        self.pos = self.pos + self.vel * dt
        if self.gravity:
            self.pos[:, 1] -= 0.5 * self.gravity * dt * dt
            self.vel = self.vel.copy()
            self.vel[:, 1] -= self.gravity * dt

    def _contact_time(self) -> float | None:
        """Time from now until balls 0 and 1 touch while approaching (gravity acts on both
        equally, so it cancels in their relative motion), or None."""
        if len(self.radii) < 2:
            return None
        (x0, y0), (x1, y1) = self.pos.tolist()  # plain floats: this runs every step
        (u0, w0), (u1, w1) = self.vel.tolist()
        px, py, vx, vy = x1 - x0, y1 - y0, u1 - u0, w1 - w0
        reach = float(self.radii[0] + self.radii[1])
        a, b, c = vx * vx + vy * vy, 2 * (px * vx + py * vy), px * px + py * py - reach * reach
        if b >= 0 or a == 0:  # separating or relatively at rest: no contact ahead
            return None
        disc = b * b - 4 * a * c
        if disc < 0:
            return None
        # Smaller root of a t^2 + b t + c, in the stable form; c <= 0 (touching) gives 0.
        return max(0.0, (2 * c) / (-b + math.sqrt(disc)))

    def _collide(self) -> None:
        """Perfectly elastic collision along the line of centres, masses proportional to r^2."""
        m0, m1 = self.radii[0] ** 2, self.radii[1] ** 2
        n = self.pos[1] - self.pos[0]
        n = n / np.linalg.norm(n)
        u0, u1 = self.vel[0] @ n, self.vel[1] @ n  # normal components; tangential ones are kept
        w0 = ((m0 - m1) * u0 + 2 * m1 * u1) / (m0 + m1)
        w1 = ((m1 - m0) * u1 + 2 * m0 * u0) / (m0 + m1)
        self.vel = self.vel.copy()
        self.vel[0] += (w0 - u0) * n
        self.vel[1] += (w1 - u1) * n

    def _advance(self, dt: float) -> None:
        remaining = dt
        for _ in range(4):  # two balls without walls meet at most once; the bound is a safeguard
            tc = self._contact_time()
            if tc is None or tc >= remaining:
                break
            self._drift(tc)
            self._collide()
            remaining -= tc
        self._drift(remaining)

    # -- rendering --------------------------------------------------------------------------------
    def render(self) -> np.ndarray:
        """(N, N, 3) uint8: white background, ball i in COLORS[i]; only each ball's bounding box is
        touched. Edge pixels are blended by coverage; interior pixels keep the pure colour."""
        n = self.resolution
        img = np.full((n, n, 3), 255, np.uint8)
        s = n / WORLD_SIZE
        for (x, y), r, color in zip(self.pos.tolist(), self.radii.tolist(), COLORS):
            c0, c1 = max(0, math.floor((x - r) * s)), min(n, math.ceil((x + r) * s) + 1)
            r0, r1 = max(0, math.floor((WORLD_SIZE - y - r) * s)), min(n, math.ceil((WORLD_SIZE - y + r) * s) + 1)
            if c0 >= c1 or r0 >= r1:
                continue  # out of view
            dx = self._xs[c0:c1] - np.float32(x)  # (w,)
            dy = self._ys[r0:r1] - np.float32(y)  # (h,)
            dist = np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2)  # (h, w), world units
            if self.antialias:  # coverage ~ signed distance to the rim, in pixels
                alpha = np.clip((np.float32(r) - dist) * np.float32(s) + np.float32(0.5), 0.0, 1.0)
            else:
                alpha = (dist <= r).astype(np.float32)
            patch = img[r0:r1, c0:c1].astype(np.float32)  # (h, w, 3)
            patch += alpha[..., None] * (color - patch)
            img[r0:r1, c0:c1] = patch + np.float32(0.5)  # round to nearest on the uint8 cast
        return img


class UniformMotion(PhysicsWorld):
    """One red ball moving horizontally at constant velocity (left or right)."""

    name = "physics/uniform"

    def _initial(self, rng):
        r, v = self._radius(rng), self._speed(rng)
        x0 = _place_along(rng, v * DT * self.max_steps, r)
        y0 = float(rng.uniform(3.0, 7.0))
        if rng.random() < 0.5:  # mirror: move left
            x0, v = WORLD_SIZE - x0, -v
        return np.array([[x0, y0]]), np.array([[v, 0.0]]), np.array([r])


class Collision(PhysicsWorld):
    """Red ball (left) and blue ball (right) moving towards each other along one horizontal line;
    they meet inside the clip and bounce elastically (mass proportional to r^2)."""

    name = "physics/collision"

    def _initial(self, rng):
        r1, r2 = self._radius(rng), self._radius(rng)
        v1, v2 = self._speed(rng), self._speed(rng)
        y0 = float(rng.uniform(3.0, 7.0))
        if v1 + v2 < 1e-3:  # both (nearly) at rest: give ball 1 a crawl so contact happens
            v1 = 1e-3
        # Choose where (xc, the x of the contact point) and when (tc) the balls touch: among 32
        # random candidates, the one that keeps both centres in view for the most frames, before
        # and after the bounce (1-D elastic velocities w1, w2 are known in closed form).
        m1, m2 = r1 * r1, r2 * r2
        w1 = ((m1 - m2) * v1 + 2 * m2 * -v2) / (m1 + m2)
        w2 = ((m2 - m1) * -v2 + 2 * m1 * v1) / (m1 + m2)
        xc = rng.uniform(2.5, 7.5, 32)[:, None]  # (32, 1)
        tc = rng.uniform(0.3, 0.7 * DT * self.max_steps, 32)[:, None]
        t = np.arange(self.max_steps + 1)[None, :] * DT  # (1, 32) frame times
        dt = t - tc
        x1 = xc - r1 + np.where(dt < 0, v1, w1) * dt
        x2 = xc + r2 + np.where(dt < 0, -v2, w2) * dt
        in_view = ((x1 > 0) & (x1 < WORLD_SIZE)).sum(1) + ((x2 > 0) & (x2 < WORLD_SIZE)).sum(1)
        k = int(np.argmax(in_view))
        xc_, tc_ = float(xc[k, 0]), float(tc[k, 0])
        return (np.array([[xc_ - r1 - v1 * tc_, y0], [xc_ + r2 + v2 * tc_, y0]]),
                np.array([[v1, 0.0], [-v2, 0.0]]), np.array([r1, r2]))


class Parabola(PhysicsWorld):
    """One red ball launched horizontally from the upper part of the view, falling under gravity
    2.5 units/s^2 (y-up, so acceleration (0, -2.5))."""

    name = "physics/parabola"
    gravity = GRAVITY

    def _initial(self, rng):
        r, v = self._radius(rng), self._speed(rng)
        x0 = _place_along(rng, v * DT * self.max_steps, r)
        y0 = float(rng.uniform(max(WORLD_SIZE / 2, WORLD_SIZE - 2.5 * r), WORLD_SIZE - r))
        if rng.random() < 0.5:
            x0, v = WORLD_SIZE - x0, -v
        return np.array([[x0, y0]]), np.array([[v, 0.0]]), np.array([r])


def _factory(cls: type[PhysicsWorld]):
    def make(resolution: int = 64, **options: Any) -> PhysicsWorld:
        unknown = set(options) - {"ood", "antialias"}
        if unknown:
            raise PlayworldError(
                f"unknown option(s) {sorted(unknown)} for world {cls.name!r}",
                "physics worlds take ood=True|False and antialias=True|False",
            )
        return cls(resolution=resolution, **options)

    make.__doc__ = cls.__doc__
    return make


register_world("physics/uniform")(_factory(UniformMotion))
register_world("physics/collision")(_factory(Collision))
register_world("physics/parabola")(_factory(Parabola))
