"""The shapes that every pooling geometry derives the same way from its ``batch``,
``channels``, ``in_size`` and ``out_size`` fields."""

from __future__ import annotations


class PooledShapes:
    """Mixin of :class:`PoolGeometry` and :class:`AdaptiveGeometry`: (N, C, *spatial)
    input and output shapes.  No state of its own (empty ``__slots__``)."""

    __slots__ = ()
    batch: int
    channels: int
    in_size: tuple[int, ...]
    out_size: tuple[int, ...]

    @property
    def nd(self) -> int:
        """Number of spatial dimensions (1 or 2)."""
        return len(self.in_size)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.channels, *self.in_size)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.batch, self.channels, *self.out_size)
