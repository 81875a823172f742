from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .models import Room


@login_required
def index(request):
    """The MultiChat page: served by Django, its WebSocket goes to Portcullis."""
    rooms = Room.objects.order_by("title")
    if not request.user.is_staff:
        rooms = rooms.filter(staff_only=False)
    return render(
        request,
        "index.html",
        {"rooms": rooms, "portcullis_ws_url": settings.PORTCULLIS_WS_URL},
    )
