"""Pictures of two ideas: the receptive field of a unit, and im2col.

Receptive field: the input pixels that can influence one output unit of a stack of
convolution / pooling layers. Each layer is a window ``(kernel, stride, padding, dilation)``, the
order of ``nn.Conv2d``'s arguments, read by :func:`cnnlab.analysis.receptive.layer_window`; output
position ``o`` of a layer sees its input positions ``o*stride - padding + t*dilation`` for
``t = 0..kernel-1`` (those inside the input; padding positions see nothing). Starting from
the one output unit and applying this backwards layer by layer gives the exact set -- a product
of one set of rows and one set of columns, because every window is separable. With dilation the
set has holes; near the border it is clipped.

im2col: every receptive field (patch) of the padded image becomes one column of the matrix
``X_col`` (rows ordered channel, kernel row, kernel column), so convolution becomes
``W_row @ X_col``; see :mod:`cnnlab.im2col`.
"""
from __future__ import annotations

import numpy as np

from ..analysis.receptive import layer_window
from ..shapes import check_int, check_pair, conv_output_size

__all__ = ["receptive_field_masks", "receptive_field_mask", "plot_receptive_field", "plot_im2col"]



def _backproject_1d(out_set, n_in, k, s, p, d):
    """Input positions (bool array of length n_in) seen by the output positions in out_set."""
    seen = np.zeros(n_in, dtype=bool)
    for o in np.flatnonzero(out_set):
        pos = o * s - p + d * np.arange(k)
        seen[pos[(pos >= 0) & (pos < n_in)]] = True
    return seen


def receptive_field_masks(layers, input_size, output_position):
    """The footprint of one output unit at every level of a stack of windows.

    Args:
        layers: list of layers, each ``(kernel, stride, padding, dilation)`` (trailing entries
            optional, defaults stride 1, padding 0, dilation 1; each entry an int or an
            (height, width) pair) or a dict with keys ``kernel``/``kernel_size``, ``stride``,
            ``pad``/``padding``, ``dilation`` (PyTorch's names work).
        input_size: H (square input) or (H, W).
        output_position: (row, col) of the unit in the last layer's output.

    Returns:
        list of ``len(layers) + 1`` boolean arrays: ``masks[0]`` (H, W) marks the input pixels
        in the unit's receptive field, ``masks[l]`` the positions of layer ``l``'s output that
        the unit depends on, ``masks[-1]`` is True only at ``output_position``.

    Raises:
        ValueError: for a malformed layer, a window that does not fit (see
            :func:`cnnlab.shapes.conv_output_size`), or a position outside the output.
    """
    if not isinstance(layers, (list, tuple)):
        raise ValueError(f"layers must be a list of (kernel, stride, padding, dilation), got {layers!r}")
    H, W = check_pair("input_size", input_size, 1)
    parsed = [layer_window(layer, i) for i, layer in enumerate(layers)]
    sizes = [(H, W)]
    for i, (k, s, p, d) in enumerate(parsed):
        h, w = sizes[-1]
        sizes.append((conv_output_size(h, k[0], s[0], p[0], d[0], axis=f"H of layers[{i}]"),
                      conv_output_size(w, k[1], s[1], p[1], d[1], axis=f"W of layers[{i}]")))
    if not isinstance(output_position, (tuple, list)) or len(output_position) != 2:
        raise ValueError(f"output_position must be (row, col), got {output_position!r}")
    r, c = output_position
    Ho, Wo = sizes[-1]
    if not (isinstance(r, (int, np.integer)) and isinstance(c, (int, np.integer))
            and 0 <= r < Ho and 0 <= c < Wo):
        raise ValueError(f"output_position {tuple(output_position)} is outside the output of size "
                         f"{Ho} x {Wo} (rows 0..{Ho - 1}, cols 0..{Wo - 1})")
    rows = np.zeros(Ho, dtype=bool)
    cols = np.zeros(Wo, dtype=bool)
    rows[r] = cols[c] = True
    masks = [np.outer(rows, cols)]
    for (k, s, p, d), (h, w) in zip(reversed(parsed), reversed(sizes[:-1])):
        rows = _backproject_1d(rows, h, k[0], s[0], p[0], d[0])
        cols = _backproject_1d(cols, w, k[1], s[1], p[1], d[1])
        masks.append(np.outer(rows, cols))
    return masks[::-1]


def receptive_field_mask(layers, input_size, output_position):
    """Boolean (H, W) mask of the input pixels in the receptive field of one output unit.

    Same arguments as :func:`receptive_field_masks`; returns its ``masks[0]``.

    Example: three 3x3 convolutions at stride 1 see a 7x7 patch of the input:
        >>> receptive_field_mask([(3, 1, 0)] * 3, 9, (1, 1)).sum()
        49
    """
    return receptive_field_masks(layers, input_size, output_position)[0]


def _extent(mask):
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return rows.min(), rows.max(), cols.min(), cols.max()


def plot_receptive_field(layers, input_size, output_position, show_layers=True, figsize=None):
    """Draw the receptive field of one output unit.

    Args:
        layers, input_size, output_position: as for :func:`receptive_field_masks`.
        show_layers: True to draw one panel per level (input, then every layer's output, the
            chosen unit in the last); False to draw only the input.
        figsize: figure size in inches.

    Returns:
        matplotlib.figure.Figure; panel ``l`` (``fig.axes[l]``) shows ``masks[l]`` as an image
        (1 = in the field, highlighted; 0 = not) with its bounding box outlined. The masks are
        attached: ``fig.rf_mask`` (the input's, (H, W) bool) and ``fig.rf_masks`` (all levels).
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Rectangle

    masks = receptive_field_masks(layers, input_size, output_position)
    shown = masks if show_layers else masks[:1]
    n = len(shown)
    if figsize is None:
        figsize = (3.2 * n, 3.9)
    fig, axes = plt.subplots(1, n, figsize=figsize, squeeze=False)
    cmap = ListedColormap(["#eeeeee", "#ff7f0e"])
    for level, (ax, mask) in enumerate(zip(axes[0], shown)):
        h, w = mask.shape
        ax.imshow(mask.astype(float), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        if max(h, w) <= 40:
            ax.set_xticks(np.arange(-0.5, w, 1), minor=True)
            ax.set_yticks(np.arange(-0.5, h, 1), minor=True)
            ax.grid(which="minor", color="white", linewidth=0.8)
            ax.tick_params(which="minor", length=0)
        ax.set_xticks([])
        ax.set_yticks([])
        r0, r1, c0, c1 = _extent(mask)
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False,
                               edgecolor="black", linestyle="--", linewidth=1.2, zorder=3))
        name = "input" if level == 0 else f"layer {level} output"
        if level == len(masks) - 1:
            name += f", unit {tuple(int(v) for v in output_position)}"
        ax.set_title(f"{name}\n{h}x{w}; field {r1 - r0 + 1}x{c1 - c0 + 1}, {int(mask.sum())} px",
                     fontsize="small")
    fig.tight_layout()
    fig.rf_mask = masks[0]
    fig.rf_masks = masks
    return fig


def plot_im2col(x, HH, WW, stride=1, pad=0, dilation=1, patches=None, annotate=None, figsize=None):
    """Picture of im2col: image patches (left) become the columns of ``X_col`` (right).

    Args:
        x: a small image, (H, W), (C, H, W) or (1, C, H, W), numpy array (C <= 4 drawn).
        HH, WW, stride, pad, dilation: the window, as for :func:`cnnlab.im2col.im2col`.
        patches: indices of the patches (= columns, row-major over output positions) to
            highlight; default the first patch, its right neighbour and the first patch of
            the second output row (those that exist).
        annotate: write the values into the cells; default when ``X_col`` has <= 400 entries.
        figsize: figure size in inches.

    Returns:
        matplotlib.figure.Figure with ``C + 1`` axes: ``axes[c]`` the zero-padded channel ``c``
        with the highlighted patches outlined, ``axes[C]`` the matrix ``X_col`` of shape
        (C*HH*WW, Hout*Wout) with the corresponding columns outlined in the same colours.
        Attached: ``fig.x_col`` (the matrix), ``fig.patch_indices`` (list of int) and
        ``fig.patch_origins`` (top-left (row, col) of each highlighted patch in the padded image).

    Raises:
        ValueError: for a bad shape or window (see :func:`cnnlab.im2col.im2col`), more than 4
            channels, or a patch index outside ``0 .. Hout*Wout - 1``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from ..im2col import im2col

    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=float)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3:
        raise ValueError(f"x must have shape (H, W), (C, H, W) or (1, C, H, W), got {x.shape}")
    C, H, W = x.shape
    if C > 4:
        raise ValueError(f"x has C = {C} channels; plot_im2col draws at most 4 (pass a few channels)")
    HH = check_int("HH", HH, 1)
    WW = check_int("WW", WW, 1)
    x_col = im2col(x[None], HH, WW, stride=stride, pad=pad, dilation=dilation)
    Hout = conv_output_size(H, HH, stride, pad, dilation, axis="H")
    Wout = conv_output_size(W, WW, stride, pad, dilation, axis="W")
    L = Hout * Wout
    if patches is None:
        patches = list(dict.fromkeys(p for p in (0, 1, Wout) if p < L))
    patches = [int(p) for p in patches]
    for p in patches:
        if not 0 <= p < L:
            raise ValueError(f"patch index {p} is outside 0..{L - 1} (Hout*Wout = {Hout}*{Wout})")
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    if annotate is None:
        annotate = x_col.size <= 400
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    origins = [(divmod(p, Wout)[0] * stride, divmod(p, Wout)[1] * stride) for p in patches]
    span_h, span_w = dilation * (HH - 1) + 1, dilation * (WW - 1) + 1

    if figsize is None:
        figsize = (3.0 * C + min(12.0, 1.0 + 0.3 * L), max(3.5, 0.25 * x_col.shape[0] + 1))
    ratios = [xp.shape[2]] * C + [max(L, 1)]
    fig, axes = plt.subplots(1, C + 1, figsize=figsize, gridspec_kw={"width_ratios": ratios})
    axes = np.atleast_1d(axes)
    vmin, vmax = float(min(xp.min(), 0)), float(max(xp.max(), 0))

    def cell_text(ax, arr):
        for (i, j), v in np.ndenumerate(arr):
            ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=7)

    for c in range(C):
        ax = axes[c]
        ax.imshow(xp[c], cmap="Greys", vmin=vmin, vmax=vmax, interpolation="nearest", alpha=0.6)
        if pad:
            ax.add_patch(Rectangle((pad - 0.5, pad - 0.5), W, H, fill=False, edgecolor="gray",
                                   linestyle=":", linewidth=1))
        for k, ((r0, c0), p) in enumerate(zip(origins, patches)):
            col = colors[k % len(colors)]
            ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), span_w, span_h, fill=False,
                                   edgecolor=col, linewidth=2.0, label=f"patch {p}"))
            if dilation > 1:
                ii, jj = np.meshgrid(r0 + dilation * np.arange(HH), c0 + dilation * np.arange(WW),
                                     indexing="ij")
                ax.scatter(jj.ravel(), ii.ravel(), s=12, color=col)
        if annotate:
            cell_text(ax, xp[c])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"channel {c}, padded {xp.shape[1]}x{xp.shape[2]}" if C > 1 else
                     f"image, padded {xp.shape[1]}x{xp.shape[2]}", fontsize="small")
    ax = axes[C]
    ax.imshow(x_col, cmap="Greys", vmin=vmin, vmax=vmax, interpolation="nearest", alpha=0.6,
              aspect="auto")
    rows = x_col.shape[0]
    for k, p in enumerate(patches):
        ax.add_patch(Rectangle((p - 0.5, -0.5), 1, rows, fill=False,
                               edgecolor=colors[k % len(colors)], linewidth=2.0, label=f"column {p}"))
    for c in range(1, C):
        ax.axhline(c * HH * WW - 0.5, color="gray", linewidth=1)
    if annotate:
        cell_text(ax, x_col)
    ax.set_xlabel("patch (output position)")
    ax.set_ylabel("(channel, kernel row, kernel col)")
    ax.set_title(f"X_col: {rows} x {L}  (C*HH*WW x Hout*Wout)", fontsize="small")
    fig.tight_layout()
    fig.x_col = x_col
    fig.patch_indices = patches
    fig.patch_origins = origins
    return fig
