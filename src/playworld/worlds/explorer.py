"""`explorer`: a controllable top-down world many screens large, seen through a window that
follows the agent.

The map (default 256 x 256 cells) is generated from a seed: grass and sand ground, lakes,
wall segments and walled rooms with doors, trees, and a jittered grid of 4 x 4-cell landmarks,
each a unique (shape, colour) pair, so places are recognisable and an agent that comes back sees
what it saw before. Gold coins lie on the ground: stepping on one gives reward +1 and the coin
respawns elsewhere (deterministically, from the seed, the coin index and its respawn count).
Everything is flat colour, with few distinct tile kinds, so a small CNN can learn it at 64 x 64.

Actions: 0 noop, 1 up, 2 down, 3 left, 4 right (one cell per step). The view shows about 16
cells across: a cell is ``resolution // 16`` pixels (2 px at 32, 4 px at 64, 16 px at 256), so a
move shifts the whole view by that integer number of pixels at every resolution (at resolutions
that are not multiples of 16 the window shows slightly more than 16 cells). The agent is drawn at
the centre of the view as a magenta disc with a dark notch on the side it faces (from 4 px cells
up); a move into an obstacle (wall, water, tree, landmark) leaves the agent in place, turns it to
face that way and draws it white for that frame, so a blocked move is never mistaken for a noop.

Coordinates are cells (x, y) = (column, row) with y pointing down, as in the map. State per
frame (int32 unless noted): ``agent`` (2,), ``camera`` (2,) the cell at the view centre (the
camera is locked to the agent), ``facing`` () 0 up 1 down 2 left 3 right, ``bumped`` () 1 when
the last move was blocked, ``coins`` (n_coins, 2), ``coin_respawns`` (n_coins,), ``t`` () step
count, ``seed`` () int64 the episode seed, ``map_seed`` () int64 the seed the map was made from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from playworld.errors import PlayworldError
from playworld.spaces import ActionSpace
from playworld.worlds.base import StepResult, World, check_resolution, register_world

VIEW_CELLS = 16
LANDMARK_CELLS, LANDMARK_SPACING = 4, 32
ACTION_NAMES = ("noop", "up", "down", "left", "right")
MOVES = np.array([[0, 0], [0, -1], [0, 1], [-1, 0], [1, 0]], np.int32)  # (dx, dy) per action

# Tile ids. Landmark tiles follow: LANDMARK + (combo * 16 + sub-cell).
VOID, GRASS, SAND, WATER, WALL, TREE, GRASS_COIN, SAND_COIN, LANDMARK = range(9)
FLOOR_COLOR = {GRASS: (126, 192, 92), SAND: (222, 203, 146)}
WATER_COLOR, WALL_COLOR, TREE_COLOR = (64, 112, 204), (104, 104, 114), (34, 112, 52)
VOID_COLOR, COIN_COLOR, PLAZA_COLOR = (16, 16, 24), (250, 206, 30), (236, 232, 220)
AGENT_COLOR, BUMP_COLOR, NOTCH_COLOR = (236, 0, 236), (255, 255, 255), (30, 0, 30)
LANDMARK_COLORS = [(214, 40, 40), (240, 136, 20), (128, 52, 200), (20, 196, 208),
                   (30, 40, 120), (128, 78, 40), (24, 24, 24), (246, 146, 186)]
SHAPES = ("disc", "square", "diamond", "triangle", "plus", "ring", "cross", "bars")
N_COMBOS = len(SHAPES) * len(LANDMARK_COLORS)
PASSABLE = np.zeros(LANDMARK + N_COMBOS * LANDMARK_CELLS**2, bool)
PASSABLE[[GRASS, SAND, GRASS_COIN, SAND_COIN]] = True
WITH_COIN = {GRASS: GRASS_COIN, SAND: SAND_COIN}


# -- tiles ------------------------------------------------------------------------------------------
def _shape_mask(shape: str, n: int) -> np.ndarray:
    """(n, n) bool mask of a landmark shape on normalised pixel-centre coordinates in [-1, 1]."""
    c = (np.arange(n) + 0.5) / n * 2 - 1
    v, u = np.meshgrid(c, c, indexing="ij")  # v down, u right
    r = np.hypot(u, v)
    return {
        "disc": r < 0.8,
        "square": np.maximum(abs(u), abs(v)) < 0.65,
        "diamond": abs(u) + abs(v) < 0.85,
        "triangle": (v > -0.75) & (v < 0.7) & (abs(u) < (v + 0.75) * 0.6),
        "plus": ((abs(u) < 0.25) & (abs(v) < 0.8)) | ((abs(v) < 0.25) & (abs(u) < 0.8)),
        "ring": (r > 0.45) & (r < 0.85),
        "cross": ((abs(u - v) < 0.35) | (abs(u + v) < 0.35)) & (np.maximum(abs(u), abs(v)) < 0.8),
        "bars": (abs(u) < 0.8) & (abs(v) < 0.8) & (np.floor((v + 0.8) / 0.32).astype(int) % 2 == 0),
    }[shape]


def _disc(p: int, radius: float) -> np.ndarray:
    """(p, p) bool disc centred in a p-pixel cell; radius in pixels (>= 0.75 so it shows at p = 2)."""
    c = np.arange(p) + 0.5 - p / 2
    return np.hypot(c[:, None], c[None, :]) <= max(radius, 0.75)


def make_tiles(p: int) -> np.ndarray:
    """All tile images for a cell size of p pixels: (n_tiles, p, p, 3) uint8."""
    tiles = np.zeros((len(PASSABLE), p, p, 3), np.uint8)
    for tid, color in [(VOID, VOID_COLOR), (GRASS, FLOOR_COLOR[GRASS]), (SAND, FLOOR_COLOR[SAND]),
                       (WATER, WATER_COLOR), (WALL, WALL_COLOR), (TREE, FLOOR_COLOR[GRASS])]:
        tiles[tid] = color
    tiles[TREE][_disc(p, 0.45 * p)] = TREE_COLOR
    for floor, coin in WITH_COIN.items():
        tiles[coin] = tiles[floor]
        tiles[coin][_disc(p, 0.3 * p)] = COIN_COLOR
    big = LANDMARK_CELLS * p  # a landmark drawn whole, then cut into its 4 x 4 cells
    for combo in range(N_COMBOS):
        img = np.empty((big, big, 3), np.uint8)
        img[:] = PLAZA_COLOR
        img[_shape_mask(SHAPES[combo // len(LANDMARK_COLORS)], big)] = LANDMARK_COLORS[combo % len(LANDMARK_COLORS)]
        cells = img.reshape(LANDMARK_CELLS, p, LANDMARK_CELLS, p, 3).transpose(0, 2, 1, 3, 4)
        first = LANDMARK + combo * LANDMARK_CELLS**2
        tiles[first:first + LANDMARK_CELLS**2] = cells.reshape(-1, p, p, 3)
    return tiles


def make_agent_sprites(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Agent sprites (facing 4, bumped 2, p, p, 3) uint8 and their mask (p, p) bool."""
    mask = _disc(p, 0.44 * p)
    c = np.arange(p) + 0.5 - p / 2
    dy, dx = np.meshgrid(c, c, indexing="ij")
    sprites = np.zeros((4, 2, p, p, 3), np.uint8)
    for facing, (mx, my) in enumerate(MOVES[1:]):
        for bumped, color in enumerate((AGENT_COLOR, BUMP_COLOR)):
            sprites[facing, bumped] = color
            if p >= 4:  # a notch on the facing side; too small to show on 2-3 px cells
                along, across = dx * mx + dy * my, dx * my - dy * mx
                sprites[facing, bumped][(along > 0.22 * p) & (abs(across) < 0.3 * p) & mask] = NOTCH_COLOR
    return sprites, mask


def coin_pixels(frames: np.ndarray) -> np.ndarray:
    """(..., R, R, 3) uint8 frames -> (..., R, R) bool: pixels in the coin colour (within L1 90 of it,
    so a model's blurred coins count too). How scripted policies and diagnostics find coins in a frame."""
    return np.abs(frames.astype(np.int16) - np.array(COIN_COLOR, np.int16)).sum(-1) < 90


# -- map generation ---------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, size: int, knots: int) -> np.ndarray:
    """(size, size) value noise in [0, 1]: a knots x knots random grid, smoothstep-interpolated."""
    t = np.linspace(0, knots - 1, size)
    i = np.minimum(t.astype(int), knots - 2)  # (size,) left knot of each cell
    f = t - i
    f = (f * f * (3 - 2 * f)).astype(np.float32)  # (size,) smoothstep weight of the right knot
    g = rng.random((knots, knots), dtype=np.float32)
    rows = g[i] * (1 - f)[:, None] + g[i + 1] * f[:, None]  # (size, knots), elementwise: no BLAS
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]  # (size, size)


def generate_map(map_seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Tile ids (size, size) int16 indexed [y, x], and the reachable floor cells (M, 2) as (x, y):
    the largest 4-connected floor region, where the agent starts and coins lie."""
    rng = np.random.default_rng([int(map_seed), 7])
    grid = np.full((size, size), GRASS, np.int16)
    grid[_smooth_noise(rng, size, max(2, size // 20)) > 0.62] = SAND
    grid[_smooth_noise(rng, size, max(2, size // 28)) > 0.7] = WATER
    n_seg = size * size // 220  # free-standing wall segments: (x, y, length, horizontal)
    segments = zip(*rng.integers(0, size, (2, n_seg)).tolist(), rng.integers(3, 11, n_seg).tolist(),
                   (rng.random(n_seg) < 0.5).tolist())
    for x, y, length, horizontal in segments:
        if horizontal:
            grid[y, x:x + length] = WALL
        else:
            grid[y:y + length, x] = WALL
    for _ in range(size * size // 4000):  # walled rooms, each with two 2-cell doors
        w, h = rng.integers(7, 16, 2)
        x, y = rng.integers(1, size - 16, 2)
        grid[y:y + h, x:x + w] = rng.choice([GRASS, SAND])
        grid[y, x:x + w] = grid[y + h - 1, x:x + w] = WALL
        grid[y:y + h, x] = grid[y:y + h, x + w - 1] = WALL
        for side in rng.choice(4, 2, replace=False):
            k = int(rng.integers(1, (w if side < 2 else h) - 3))
            if side < 2:
                grid[y + (h - 1) * side, x + k:x + k + 2] = GRASS
            else:
                grid[y + k:y + k + 2, x + (w - 1) * (side - 2)] = GRASS
    grid[(grid == GRASS) & (rng.random((size, size)) < 0.015)] = TREE
    # Landmarks on a jittered grid, each a distinct (shape, colour) combo, in a 1-cell clearing.
    n = max(1, size // LANDMARK_SPACING)
    combos = rng.permutation(N_COMBOS)
    sub = np.arange(LANDMARK_CELLS**2, dtype=np.int16).reshape(LANDMARK_CELLS, LANDMARK_CELLS)
    for k in range(n * n):
        cell = min(LANDMARK_SPACING, size)
        x0 = (k % n) * cell + int(rng.integers(2, max(3, cell - LANDMARK_CELLS - 2)))
        y0 = (k // n) * cell + int(rng.integers(2, max(3, cell - LANDMARK_CELLS - 2)))
        grid[y0 - 1:y0 + LANDMARK_CELLS + 1, x0 - 1:x0 + LANDMARK_CELLS + 1] = GRASS
        grid[y0:y0 + LANDMARK_CELLS, x0:x0 + LANDMARK_CELLS] = LANDMARK + combos[k % N_COMBOS] * LANDMARK_CELLS**2 + sub
    grid[[0, -1], :] = WALL
    grid[:, [0, -1]] = WALL
    labels, _ = ndimage.label(PASSABLE[grid])
    largest = np.bincount(labels.ravel())[1:].argmax() + 1
    ys, xs = np.nonzero(labels == largest)
    return grid, np.stack([xs, ys], axis=1).astype(np.int32)


class Explorer(World):
    name = "explorer"
    action_space = ActionSpace.discrete(5, ACTION_NAMES)
    fps = 10.0

    def __init__(self, resolution: int = 64, map_size: int = 256, n_coins: int = 128,
                 max_steps: int = 200, map_seed: int | None = None):
        self.resolution = check_resolution(resolution)
        if not 32 <= map_size <= 4096:
            raise PlayworldError(f"explorer map_size {map_size} is out of range", "choose 32 to 4096 cells")
        self.map_size, self.n_coins, self.max_steps = int(map_size), int(n_coins), int(max_steps)
        self.fixed_map_seed = map_seed
        self.cell_px = self.resolution // VIEW_CELLS
        self.tiles = make_tiles(self.cell_px)
        self.sprites, self.sprite_mask = make_agent_sprites(self.cell_px)
        self.pad = self.resolution // self.cell_px // 2 + 2  # VOID cells around the map
        self.centre_px = (self.resolution - self.cell_px) // 2  # where the agent's cell is drawn
        self._seed_rng = np.random.default_rng()
        self._map_key: tuple[int, int] | None = None

    # -- map and episode --------------------------------------------------------------------------
    def _load_map(self, map_seed: int) -> None:
        if self._map_key == (map_seed, self.map_size):
            return
        self.base, self.reachable = generate_map(map_seed, self.map_size)
        self.padded_base = np.pad(self.base, self.pad, constant_values=VOID)
        self._map_key = (map_seed, self.map_size)
        self.map_seed = map_seed

    def _place_coins(self) -> None:
        """Draw the coins into the display grid (a padded copy of the map with coin tiles)."""
        self.display = self.padded_base.copy()
        for x, y in self.coins:
            self._set_coin(x, y, True)

    def _set_coin(self, x: int, y: int, on: bool) -> None:
        cy, cx = y + self.pad, x + self.pad
        base = self.padded_base[cy, cx]
        self.display[cy, cx] = WITH_COIN[int(base)] if on else base

    def _has_coin(self, x: int, y: int) -> bool:
        return int(self.display[y + self.pad, x + self.pad]) in (GRASS_COIN, SAND_COIN)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        # An explicit seed re-seeds the world; seed=None draws the next episode from the world's
        # own generator, so a collection seeded once gives distinct, reproducible episodes.
        if seed is not None:
            self._seed_rng = np.random.default_rng(seed)
        # A map whose largest floor region cannot hold the agent and every coin (walls and water
        # can cut a small map into pockets) is skipped: the next seed is drawn from the same
        # generator, so episodes stay reproducible. A fixed map_seed has no second draw.
        for _ in range(64):
            self.seed = int(self._seed_rng.integers(2**31))
            self._load_map(self.seed if self.fixed_map_seed is None else int(self.fixed_map_seed))
            if len(self.reachable) > self.n_coins or self.fixed_map_seed is not None:
                break
        if len(self.reachable) <= self.n_coins:
            where = f"map_seed {self.fixed_map_seed}" if self.fixed_map_seed is not None else f"{self.map_size}-cell maps"
            raise PlayworldError(f"explorer {where} too small for {self.n_coins} coins (the largest floor region "
                                 f"has {len(self.reachable)} cells)", "lower n_coins or raise map_size")
        rng = np.random.default_rng([self.seed, 1])
        picks = rng.choice(len(self.reachable), self.n_coins + 1, replace=False)
        self.agent = self.reachable[picks[0]].copy()
        self.coins = self.reachable[picks[1:]].copy()
        self.coin_respawns = np.zeros(self.n_coins, np.int32)
        self.facing, self.bumped, self.t = 1, 0, 0
        self._place_coins()
        return self.render(), self.state()

    def step(self, action: Any) -> StepResult:
        a = int(np.asarray(action))
        if not 0 <= a < 5:
            raise ValueError(f"explorer action must be in 0..4, got {a}")
        self.bumped, reward = 0, 0.0
        if a > 0:
            self.facing = a - 1
            x, y = self.agent + MOVES[a]
            if PASSABLE[self.display[y + self.pad, x + self.pad]]:
                self.agent = np.array([x, y], np.int32)
                if self._has_coin(x, y):
                    reward = 1.0
                    self._respawn(x, y)
            else:
                self.bumped = 1
        self.t += 1
        return StepResult(self.render(), reward, False, self.t >= self.max_steps, self.state())

    def _respawn(self, x: int, y: int) -> None:
        """Move the coin at (x, y) to a free reachable cell drawn from (seed, coin index, count)."""
        k = int(np.nonzero((self.coins[:, 0] == x) & (self.coins[:, 1] == y))[0][0])
        self._set_coin(x, y, False)
        self.coin_respawns[k] += 1
        rng = np.random.default_rng([self.seed, 2, k, int(self.coin_respawns[k])])
        while True:
            nx, ny = self.reachable[rng.integers(len(self.reachable))]
            if not self._has_coin(nx, ny) and not (nx == self.agent[0] and ny == self.agent[1]):
                break
        self.coins[k] = (nx, ny)
        self._set_coin(nx, ny, True)

    def state(self) -> dict[str, np.ndarray]:
        return {
            "agent": self.agent.astype(np.int32), "camera": self.agent.astype(np.int32),
            "facing": np.array(self.facing, np.int32), "bumped": np.array(self.bumped, np.int32),
            "coins": self.coins.astype(np.int32), "coin_respawns": self.coin_respawns.copy(),
            "t": np.array(self.t, np.int32), "seed": np.array(self.seed, np.int64),
            "map_seed": np.array(self.map_seed, np.int64),
        }

    def restore(self, state: dict[str, np.ndarray]) -> np.ndarray:
        self.seed = int(state["seed"])
        self._load_map(int(state["map_seed"]))
        self.agent = np.array(state["agent"], np.int32)
        self.coins = np.array(state["coins"], np.int32)
        self.coin_respawns = np.array(state["coin_respawns"], np.int32)
        self.facing, self.bumped, self.t = int(state["facing"]), int(state["bumped"]), int(state["t"])
        self._place_coins()
        return self.render()

    # -- rendering --------------------------------------------------------------------------------
    def render(self) -> np.ndarray:
        """(N, N, 3) uint8: the window of the tile map around the agent, then the agent sprite."""
        n, p = self.resolution, self.cell_px
        top = (self.agent[::-1] + self.pad) * p - self.centre_px  # (row, col) of the window in map pixels
        c0 = top // p  # first cell (row, col)
        c1 = (top + n - 1) // p + 1
        ids = self.display[c0[0]:c1[0], c0[1]:c1[1]]  # (h, w) tile ids
        h, w = ids.shape
        big = self.tiles[ids].transpose(0, 2, 1, 3, 4).reshape(h * p, w * p, 3)
        off = top - c0 * p
        frame = np.ascontiguousarray(big[off[0]:off[0] + n, off[1]:off[1] + n])
        o = self.centre_px
        cell = frame[o:o + p, o:o + p]
        cell[self.sprite_mask] = self.sprites[self.facing, self.bumped][self.sprite_mask]
        return frame


@register_world("explorer")
def make_explorer(resolution: int = 64, **options: Any) -> Explorer:
    """Top-down explorer world; options: map_size, n_coins, max_steps, map_seed (fix one map)."""
    allowed = {"map_size", "n_coins", "max_steps", "map_seed"}
    unknown = set(options) - allowed
    if unknown:
        raise PlayworldError(f"unknown option(s) {sorted(unknown)} for world 'explorer'",
                             f"explorer takes {', '.join(sorted(allowed))}")
    return Explorer(resolution=resolution, **options)
