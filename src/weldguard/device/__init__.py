"""Welding-machine chips (加芯): device protocol v1, provisioning and binding, the MQTT
gateway and ingest, signed commands, the reference chip. The protocol itself lives in
``weldguard.device.protocol`` and is specified normatively in docs/protocol.md."""
