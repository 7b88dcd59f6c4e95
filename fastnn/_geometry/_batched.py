"""The checks of the batched ``(N, C, *spatial)`` input that every geometry validates."""

from __future__ import annotations


def check_batched(op: str, nd: int, input_shape: tuple[int, ...]) -> None:
    """ValueError unless ``input_shape`` has ``nd`` spatial axes after N and C."""
    if len(input_shape) != nd + 2:
        layout = "(N, C, L)" if nd == 1 else "(N, C, H, W)"
        raise ValueError(
            f"{op}: input must be {nd + 2}-d {layout} (batched), got shape {tuple(input_shape)}"
        )


def check_planes(op: str, channels: int, in_size: list[int], input_shape: tuple) -> None:
    """ValueError unless there are channels and every spatial axis is non-empty (only the
    batch may be empty): what the pooling ops require."""
    if channels < 1 or any(s < 1 for s in in_size):
        raise ValueError(
            f"{op}: input must have non-zero channels and spatial size (only the batch may be "
            f"empty), got shape {tuple(input_shape)}"
        )
