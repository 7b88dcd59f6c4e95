"""fastnn's ``torch.library`` custom ops (the ``torch.compile`` path of every family
module): a forward op and its backward, registered together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["op_pair"]


def op_pair(
    name: str,
    forward: Callable[..., Any],
    forward_schema: str,
    backward: Callable[..., Any],
    backward_schema: str,
) -> tuple[Any, Any]:
    """``fastnn::{name}`` running ``forward`` and ``fastnn::{name}_backward`` running
    ``backward``, with these schemas; neither mutates its arguments."""
    forward_op = torch.library.custom_op(
        f"fastnn::{name}", forward, mutates_args=(), schema=forward_schema
    )
    backward_op = torch.library.custom_op(
        f"fastnn::{name}_backward", backward, mutates_args=(), schema=backward_schema
    )
    return forward_op, backward_op
