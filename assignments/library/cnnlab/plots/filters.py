"""What a network learned and computed: first-layer filter grids and feature-map grids.

Both figures show one mosaic image: tiles laid out row by row, ``ncols`` per row, separated by
``padding`` pixels of background (white for filters, NaN -- drawn transparent -- for feature
maps). :func:`tile_grid` builds the mosaic, so notebooks and tests can read it directly.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["tile_grid", "normalize_per_tile", "plot_filters", "plot_feature_maps"]


def _to_numpy(name, a) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor or parameter
        a = a.detach().cpu().numpy()
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy array or a torch tensor, got {type(a).__name__}")
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    return a.astype(float)


def normalize_per_tile(tiles) -> np.ndarray:
    """Min-max normalise each tile to [0, 1] on its own.

    Args:
        tiles: array of shape (T, ...).

    Returns:
        float array of the same shape; ``(t - t.min()) / (t.max() - t.min())`` per tile, and
        0.5 everywhere for a constant tile.
    """
    tiles = np.asarray(tiles, dtype=float)
    flat = tiles.reshape(len(tiles), -1)
    lo = flat.min(axis=1, keepdims=True)
    hi = flat.max(axis=1, keepdims=True)
    span = hi - lo
    out = np.where(span > 0, (flat - lo) / np.where(span > 0, span, 1.0), 0.5)
    return out.reshape(tiles.shape)


def tile_grid(tiles, ncols=None, padding=1, pad_value=1.0) -> np.ndarray:
    """Lay tiles out in a grid.

    Args:
        tiles: array of shape (T, h, w) or (T, h, w, 3).
        ncols: tiles per row; default ``ceil(sqrt(T))``.
        padding: background pixels between tiles and around the border (int >= 0).
        pad_value: background value.

    Returns:
        array of shape (rows*(h+padding)+padding, ncols*(w+padding)+padding[, 3]) where
        ``rows = ceil(T / ncols)``; tile ``k`` sits at row ``k // ncols``, column ``k % ncols``,
        its top-left pixel at ``(padding + r*(h+padding), padding + c*(w+padding))``.
    """
    tiles = np.asarray(tiles, dtype=float)
    if tiles.ndim not in (3, 4) or (tiles.ndim == 4 and tiles.shape[-1] != 3) or len(tiles) == 0:
        raise ValueError(f"tiles must have shape (T, h, w) or (T, h, w, 3) with T >= 1, got {tiles.shape}")
    T, h, w = tiles.shape[:3]
    ncols = math.ceil(math.sqrt(T)) if ncols is None else int(ncols)
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    ncols = min(ncols, T)
    rows = math.ceil(T / ncols)
    shape = (rows * (h + padding) + padding, ncols * (w + padding) + padding) + tiles.shape[3:]
    grid = np.full(shape, pad_value, dtype=float)
    for k in range(T):
        r, c = divmod(k, ncols)
        y0, x0 = padding + r * (h + padding), padding + c * (w + padding)
        grid[y0:y0 + h, x0:x0 + w] = tiles[k]
    return grid


def plot_filters(weights, ncols=None, padding=1, channel=None, title=None, figsize=None):
    """Show first-layer convolution filters as a grid of small images.

    Args:
        weights: conv weights (F, C, HH, WW), numpy array or torch tensor (e.g.
            ``model.conv1.weight``).
        ncols: filters per row (default ``ceil(sqrt(F))``).
        padding: white pixels between filters.
        channel: for C not in {1, 3}, the input channel to show (grayscale); ignored otherwise.
        title: axes title (default ``"F filters, C x HH x WW"``).
        figsize: figure size in inches (default scales with the grid).

    Each filter is min-max normalised to [0, 1] on its own (its sign and scale are lost, its
    pattern kept). C = 3 is drawn as an RGB image (channel order R, G, B), C = 1 in grayscale.

    Returns:
        matplotlib.figure.Figure with one axes holding one image: the :func:`tile_grid` of the
        normalised filters, shape (rows*(HH+padding)+padding, ncols*(WW+padding)+padding[, 3]).

    Raises:
        ValueError: if ``weights`` is not 4-D, or C is not 1 or 3 and ``channel`` is not a
            valid channel index.
    """
    import matplotlib.pyplot as plt

    w = _to_numpy("weights", weights)
    if w.ndim != 4:
        raise ValueError(f"weights must have shape (F, C, HH, WW), got shape {w.shape}")
    F, C, HH, WW = w.shape
    if C == 3:
        tiles = normalize_per_tile(w).transpose(0, 2, 3, 1)  # (F, HH, WW, 3)
    elif C == 1:
        tiles = normalize_per_tile(w[:, 0])
    else:
        if channel is None or not (isinstance(channel, (int, np.integer)) and 0 <= channel < C):
            raise ValueError(f"weights have C = {C} input channels (shape {w.shape}): only C = 1 "
                             f"(grayscale) or C = 3 (RGB) can be drawn whole; pass channel=0..{C - 1} "
                             f"to show one channel, got channel={channel!r}")
        tiles = normalize_per_tile(w[:, channel])
    grid = tile_grid(tiles, ncols=ncols, padding=padding, pad_value=1.0)
    if figsize is None:
        scale = 6.0 / max(grid.shape[:2])
        figsize = (max(2.0, grid.shape[1] * scale), max(2.0, grid.shape[0] * scale))
    fig, ax = plt.subplots(figsize=figsize)
    if grid.ndim == 3:
        ax.imshow(grid, interpolation="nearest")
    else:
        ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title if title is not None else f"{F} filters, {C} x {HH} x {WW}")
    return fig


def plot_feature_maps(activations, ncols=None, max_maps=None, padding=1, cmap="viridis",
                      normalize=True, title=None, figsize=None):
    """Show the feature maps (activation maps) of one image as a grid.

    Args:
        activations: (C, H, W) -- or (1, C, H, W) -- numpy array or torch tensor: the output of
            one layer for one image.
        ncols: maps per row (default ``ceil(sqrt(C))``).
        max_maps: show only the first ``max_maps`` channels.
        padding: background pixels (drawn transparent) between maps.
        cmap: matplotlib colormap.
        normalize: True to min-max normalise each map to [0, 1] on its own (shows every map's
            pattern); False to share one colour scale (compares magnitudes across maps).
        title: axes title (default ``"C feature maps, H x W"``).
        figsize: figure size in inches.

    Returns:
        matplotlib.figure.Figure with one axes holding one image: the :func:`tile_grid` of the
        (normalised) maps, NaN between maps.

    Raises:
        ValueError: for a shape other than (C, H, W) or (1, C, H, W).
    """
    import matplotlib.pyplot as plt

    a = _to_numpy("activations", activations)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"activations must have shape (C, H, W) for one image (or (1, C, H, W)), "
                         f"got shape {a.shape}")
    C, H, W = a.shape
    if max_maps is not None:
        a = a[:int(max_maps)]
    tiles = normalize_per_tile(a) if normalize else a
    grid = tile_grid(tiles, ncols=ncols, padding=padding, pad_value=np.nan)
    if figsize is None:
        scale = 6.0 / max(grid.shape)
        figsize = (max(2.0, grid.shape[1] * scale), max(2.0, grid.shape[0] * scale))
    fig, ax = plt.subplots(figsize=figsize)
    vmin, vmax = (0.0, 1.0) if normalize else (np.nanmin(grid), np.nanmax(grid))
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title if title is not None else f"{len(a)} of {C} feature maps, {H} x {W}"
                 if len(a) < C else f"{C} feature maps, {H} x {W}")
    return fig
