"""Pure domain rules of weldguard: no I/O, no ORM, no clock reads."""
