"""Signals for application code, sent by :class:`~.views.WebSocketView` after each event succeeds.

* ``connected(sender, session, request)``: a session row exists for the new connection.
* ``message_received(sender, session, request, handler, data)``: before the handler runs;
  ``data`` is the parsed JSON body (or ``None``), ``handler`` the method name chosen.
* ``disconnected(sender, connection_id, gateway_id, request)``: the session was marked
  disconnected (sent even when no row matched: API Gateway's ``$disconnect`` is best effort).

``sender`` is the view class. And from :mod:`.sending`:

* ``delivery_failed(sender, report)``: a send, close or probe could not reach some recipients
  after its retries; ``report`` is the :class:`~.sending.DeliveryReport` (``report.failed`` maps
  connection ids to reasons). ``sender`` is the transport class. Sent again, from the pending
  worker's thread, when recipients that were still opening (``report.pending``) end up
  undelivered.

And from :mod:`.tasks`:

* ``broadcast_finished(sender, broadcast, report)``: the last batch of a background broadcast
  finished (on the worker that ran it); ``report`` is :meth:`~.models.Broadcast.report`.
  ``sender`` is :class:`~.models.Broadcast`.
"""

from django.dispatch import Signal

connected = Signal()
message_received = Signal()
disconnected = Signal()
delivery_failed = Signal()
broadcast_finished = Signal()
