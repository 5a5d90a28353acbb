"""dlib's face recognition ResNet, its trained weights run by numpy's matrix multiply.

The network and its weights are dlib's own (`dlib_face_recognition_resnet_model_v1.dat` from
face_recognition_models; the architecture is dlib's `dnn_face_recognition_ex.cpp`). Only the
arithmetic moves: dlib-bin is built without BLAS, so its forward pass runs on dlib's own matrix code
(75 ms per face on this hardware); here every convolution is one float32 matrix product in the BLAS
numpy ships with (about 10 ms per face on one core). The input is the same 150x150 chip dlib cuts
(`dlib.get_face_chips`, padding 0.25), and the encodings agree with dlib's `compute_face_descriptor`
to within 1e-5 (tests/faces/test_face_resnet.py), so the calibrated thresholds still hold.

The model file is read by a parser that accepts this network only: every layer, its size, stride
and padding must be the ones below, in order, or loading raises FaceError. A different or damaged
file never produces encodings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from gatekeeper.errors import FaceError

if TYPE_CHECKING:
    from numpy.typing import NDArray

CHIP_PX = 150  # the network's input: a 150x150 RGB chip
CHIP_PADDING = 0.25  # dlib's chip padding around the 5 landmarks (get_face_chip_details)
ENCODING_SIZE = 128

# (filters, downsample) of each residual block, input side first: dlib's alevel4 .. alevel0.
_BLOCKS: tuple[tuple[int, bool], ...] = (
    ((32, False),) * 3
    + ((64, True),)
    + ((64, False),) * 3
    + ((128, True),)
    + ((128, False),) * 2
    + ((256, True),)
    + ((256, False),) * 2
    + ((256, True),)
)


def _expected_layers() -> list[tuple[object, ...]]:
    """The network's layers as the model file lists them (input side first), with their geometry.

    ("con", filters, inputs, size, stride, padding), ("affine", channels), ("relu",),
    ("max_pool", size, stride), ("avg_pool", size, stride) (size 0: the whole image), ("add_prev",).
    """
    layers: list[tuple[object, ...]] = [("con", 32, 3, 7, 2, 0), ("affine", 32), ("relu",)]
    layers.append(("max_pool", 3, 2))
    channels = 32
    for filters, down in _BLOCKS:
        layers += [
            ("con", filters, channels, 3, 2 if down else 1, 0 if down else 1),
            ("affine", filters),
            ("relu",),
            ("con", filters, filters, 3, 1, 1),
            ("affine", filters),
        ]
        if down:
            layers.append(("avg_pool", 2, 2))
        layers += [("add_prev",), ("relu",)]
        channels = filters
    layers.append(("avg_pool", 0, 1))
    return layers


# A layer's name as dlib serialises it: a one-byte length, then the text.
_NAME = re.compile(
    rb"\x01(\x05con_4|\x07affine_|\x05relu_|\x09add_prev_|\x0aavg_pool_2|\x0amax_pool_2|\x04fc_2)"
)
_INPUT = b"\x01\x15input_rgb_image_sized"


@dataclass(frozen=True)
class _Conv:
    """A convolution with the affine layer after it folded in: weights (size*size*inputs, filters)."""

    weights: NDArray[np.float32]
    bias: NDArray[np.float32]
    size: int
    stride: int
    padding: int


@dataclass(frozen=True)
class _Block:
    """Two convolutions and a shortcut (an average pool of the input when it downsamples)."""

    first: _Conv
    second: _Conv
    downsample: bool


class ResNetEncoder:
    """The 128-number face encoding of 150x150 chips; build with ResNetEncoder.load(path)."""

    def __init__(
        self, means: NDArray[np.float32], stem: _Conv, blocks: list[_Block], fc: NDArray[np.float32]
    ) -> None:
        self._means = means
        self._stem = stem
        self._blocks = blocks
        self._fc = fc

    @classmethod
    def load(cls, path: Path) -> ResNetEncoder:
        """Read dlib's model file; raises FaceError unless it holds exactly this network."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FaceError(f"cannot read the face encoder model {path}: {exc.strerror}") from exc
        try:
            return _parse(data)
        except (ValueError, IndexError) as exc:
            raise FaceError(f"{path.name} is not dlib's face recognition ResNet as expected: {exc}") from exc

    def encode(self, chips: NDArray[np.uint8]) -> NDArray[np.float64]:
        """Encodings (n, 128) of n chips (n, 150, 150, 3) uint8 RGB, as dlib computes them."""
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_PX, CHIP_PX, 3) or chips.dtype != np.uint8:
            raise FaceError(
                f"chips must be (n, {CHIP_PX}, {CHIP_PX}, 3) uint8 (got {chips.shape} {chips.dtype})"
            )
        # dlib's input_rgb_image_sized: (pixel - channel mean) / 256.
        x = (chips.astype(np.float32) - self._means) * np.float32(1 / 256)
        x = np.maximum(_convolve(x, self._stem), 0)
        x = sliding_window_view(x, (3, 3), axis=(1, 2))[:, ::2, ::2].max(axis=(4, 5))
        for block in self._blocks:
            y = _convolve(np.maximum(_convolve(x, block.first), 0), block.second)
            shortcut = _average_pool(x) if block.downsample else x
            x = np.maximum(_add_padded(y, shortcut), 0)
        # (n, 1, 256) @ (256, 128): one product per chip here too.
        encodings: NDArray[np.float32] = np.matmul(x.mean(axis=(1, 2))[:, None, :], self._fc)[:, 0]
        return encodings.astype(np.float64)


def _convolve(x: NDArray[np.float32], conv: _Conv) -> NDArray[np.float32]:
    """NHWC convolution (dlib's: correlation, zero padding, output 1 + (in + 2p - k) // s), as one product."""
    if conv.padding:
        p = conv.padding
        x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    n, height, width = x.shape[:3]
    out_h = (height - conv.size) // conv.stride + 1
    out_w = (width - conv.size) // conv.stride + 1
    windows = sliding_window_view(x, (conv.size, conv.size), axis=(1, 2))
    windows = windows[:, :: conv.stride, :: conv.stride][:, :out_h, :out_w]  # n, h, w, c, ky, kx
    columns = np.ascontiguousarray(windows.transpose(0, 1, 2, 4, 5, 3)).reshape(n, out_h * out_w, -1)
    # One product per chip (numpy loops over the first axis): a chip's encoding is then the same
    # bits whatever else is in the batch, so sharing batches among processes changes nothing.
    out: NDArray[np.float32] = np.matmul(columns, conv.weights)
    out += conv.bias
    return out.reshape(n, out_h, out_w, -1)


def _average_pool(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """2x2 average pooling with stride 2 and no padding (a last odd row or column is dropped)."""
    pooled: NDArray[np.float32] = sliding_window_view(x, (2, 2), axis=(1, 2))[:, ::2, ::2].mean(axis=(4, 5))
    return pooled


def _add_padded(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    """dlib's add_prev: the sum over the larger of each dimension, a missing element counting as 0."""
    if a.shape == b.shape:
        return a + b
    shape = tuple(max(i, j) for i, j in zip(a.shape, b.shape, strict=True))
    out = np.zeros(shape, dtype=np.float32)
    out[: a.shape[0], : a.shape[1], : a.shape[2], : a.shape[3]] += a
    out[: b.shape[0], : b.shape[1], : b.shape[2], : b.shape[3]] += b
    return out


class _Reader:
    """dlib's serialisation: integers as a length byte (0x80: negative) and little-endian bytes."""

    def __init__(self, data: bytes, at: int) -> None:
        self.data = data
        self.at = at

    def integer(self) -> int:
        head = self.data[self.at]
        size = head & 0x0F
        if size > 8 or head & 0x70:
            raise ValueError(f"bad integer at byte {self.at}")
        value = int.from_bytes(self.data[self.at + 1 : self.at + 1 + size], "little")
        self.at += 1 + size
        return -value if head & 0x80 else value

    def real(self) -> float:
        """dlib's portable float: a mantissa and a power of two."""
        mantissa = self.integer()
        return float(mantissa * 2.0 ** self.integer())

    def tensor(self) -> NDArray[np.float32]:
        """A tensor: version 2, four dimensions, then little-endian IEEE floats."""
        if self.integer() != 2:
            raise ValueError(f"unknown tensor version at byte {self.at}")
        count = 1
        for _ in range(4):
            count *= self.integer()
        end = self.at + 4 * count
        if end > len(self.data):
            raise ValueError("the file ends inside a tensor")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.at).astype(np.float32)
        self.at = end
        if not np.all(np.isfinite(values)):
            raise ValueError("a weight is not a finite number")
        return values


def _parse(data: bytes) -> ResNetEncoder:
    """The network in dlib's model file; raises ValueError on any layer other than expected."""
    start = data.find(_INPUT)
    if start < 0:
        raise ValueError("no input_rgb_image_sized layer")
    reader = _Reader(data, start + len(_INPUT))
    means = np.array([reader.real() for _ in range(3)], dtype=np.float32)
    if (reader.integer(), reader.integer()) != (CHIP_PX, CHIP_PX):
        raise ValueError(f"the input is not {CHIP_PX}x{CHIP_PX}")
    found: list[tuple[object, ...]] = []
    convs: list[_Conv] = []
    pending: tuple[NDArray[np.float32], int, int, int, int, int] | None = None
    fc: NDArray[np.float32] | None = None
    while fc is None:
        match = _NAME.search(data, reader.at)
        if match is None:
            raise ValueError("the file ends before the fully connected layer")
        name = match.group(1)[1:].decode()
        reader.at = match.end()
        if name == "con_4":
            params = reader.tensor()
            filters, rows, cols, stride_y, stride_x, pad_y, pad_x = (reader.integer() for _ in range(7))
            if rows != cols or stride_y != stride_x or pad_y != pad_x or filters < 1 or rows < 1:
                raise ValueError(f"convolution {len(convs) + 1} is not square")
            inputs, rest = divmod(params.size - filters, filters * rows * cols)
            if rest or inputs < 1:
                raise ValueError(f"convolution {len(convs) + 1} has {params.size} weights")
            pending = (params, filters, inputs, rows, stride_y, pad_y)
            found.append(("con", filters, inputs, rows, stride_y, pad_y))
        elif name == "affine_":
            params = reader.tensor()
            if pending is None or params.size != 2 * pending[1]:
                raise ValueError("an affine layer does not follow a convolution of its size")
            convs.append(_folded(pending, params))
            pending = None
            found.append(("affine", params.size // 2))
        elif name in ("max_pool_2", "avg_pool_2"):
            rows, cols, stride_y, stride_x, pad_y, pad_x = (reader.integer() for _ in range(6))
            if rows != cols or stride_y != stride_x or pad_y or pad_x:
                raise ValueError(f"unexpected {name} geometry")
            found.append((name[:8], rows, stride_y))
        elif name == "fc_2":
            outputs, inputs = reader.integer(), reader.integer()
            weights = reader.tensor()
            if (outputs, inputs, weights.size) != (ENCODING_SIZE, 256, ENCODING_SIZE * 256):
                raise ValueError(f"the fully connected layer is {inputs}x{outputs}")
            fc = weights.reshape(inputs, outputs)
        else:
            found.append((name.rstrip("_"),))
    expected = _expected_layers()
    if found != expected:
        shorter = min(len(found), len(expected))
        at = next((i for i in range(shorter) if found[i] != expected[i]), shorter)
        got = found[at] if at < len(found) else "nothing"
        want = expected[at] if at < len(expected) else "nothing"
        raise ValueError(f"layer {at + 1} is {got}, expected {want}")
    stem, rest = convs[0], convs[1:]
    blocks = [_Block(rest[2 * i], rest[2 * i + 1], down) for i, (_, down) in enumerate(_BLOCKS)]
    return ResNetEncoder(means, stem, blocks, np.ascontiguousarray(fc))


def _folded(conv: tuple[NDArray[np.float32], int, int, int, int, int], affine: NDArray[np.float32]) -> _Conv:
    """A convolution followed by a per-channel affine layer (gamma * x + beta), as one convolution."""
    params, filters, inputs, size, stride, padding = conv
    gamma, beta = affine[:filters], affine[filters:]
    kernels = params[: filters * inputs * size * size].reshape(filters, inputs, size, size)
    bias = params[filters * inputs * size * size :]
    # (filters, inputs, ky, kx) -> rows ordered (ky, kx, inputs), as _convolve lays out its columns.
    weights = kernels.transpose(2, 3, 1, 0).reshape(size * size * inputs, filters) * gamma
    return _Conv(
        np.ascontiguousarray(weights, dtype=np.float32),
        (bias * gamma + beta).astype(np.float32),
        size,
        stride,
        padding,
    )
