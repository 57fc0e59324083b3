"""Reference chip and fleet simulator: speaks device protocol v1 (docs/protocol.md)
and nothing private of the platform."""

from weldguard.sim.chip import ChipConfig, ChipCore, Misbehaviour

__all__ = ["ChipConfig", "ChipCore", "Misbehaviour"]
