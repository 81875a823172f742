from django.db import models


class Room(models.Model):
    """A chat room, as in the channels-examples MultiChat app."""

    title = models.CharField(max_length=255)
    # Only users with is_staff may join.
    staff_only = models.BooleanField(default=False)

    def __str__(self):
        return self.title

    @property
    def group_name(self):
        """The channel layer group of the room's sockets, in Django and in Portcullis alike."""
        return "room-%s" % self.id
