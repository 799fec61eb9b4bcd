import json

from django_aws_api_gateway_websockets.models import WebSocketSession


def test_connect_message_disconnect(ws, token, user):
    response = ws.connect(token=token, channel="general")
    assert response.status_code == 200, response.content
    session = WebSocketSession.objects.get(connection_id=ws.connection_id)
    assert session.user == user and session.channel_name == "general" and session.connected
    reply = ws.message({"action": "echo", "text": "hi"})
    assert reply.status_code == 200
    assert json.loads(reply.content) == {
        "handler": "echo",
        "data": {"action": "echo", "text": "hi"},
    }
    assert ws.disconnect().status_code == 200
    session.refresh_from_db()
    assert not session.connected and session.disconnected_at
