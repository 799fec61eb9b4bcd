import json
import subprocess
import sys
import textwrap

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


def test_package_imports_without_django_stubs_ext():
    """A site need not run ``django_stubs_ext.monkeypatch()``: the package (admin included)
    loads with Django's own classes, which are not subscriptable at runtime."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["django_stubs_ext"] = None  # as on a site without the lint extra
        import django
        from django.conf import settings
        settings.configure(
            INSTALLED_APPS=[
                "django.contrib.admin",
                "django.contrib.auth",
                "django.contrib.contenttypes",
                "django.contrib.sessions",
                "django.contrib.messages",
                "django_aws_api_gateway_websockets",
            ],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        )
        django.setup()
        import django_aws_api_gateway_websockets.admin
        import django_aws_api_gateway_websockets.views
        print("loaded")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and "loaded" in result.stdout, result.stderr
