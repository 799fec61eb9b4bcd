from django.conf import settings
from django.db import models


class ChatMessage(models.Model):
    """One line said in a room (kept so a page that opens late can ask for the history)."""

    room = models.CharField(max_length=100, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    text = models.CharField(max_length=2000)
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sent_at", "pk"]
        permissions = [("join_staff_room", "Can join the staff room")]

    def __str__(self) -> str:
        return f"[{self.room}] {self.user}: {self.text[:40]}"

    def as_message(self) -> dict:
        return {
            "type": "chat_message",
            "id": self.pk,
            "room": self.room,
            "user": self.user.get_username(),
            "text": self.text,
            "sent_at": self.sent_at.isoformat(),
        }
