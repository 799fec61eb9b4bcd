"""The rooms the demo offers. A room is a channel name; the staff room needs a permission."""

ROOMS = ["lobby", "random", "staff"]
STAFF_ROOM = "staff"
STAFF_PERMISSION = "chat.join_staff_room"
