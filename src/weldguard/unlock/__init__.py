"""扫码开机: the signed QR labels on the machines, the welder's scan and the work
sessions that follow an unlock."""
