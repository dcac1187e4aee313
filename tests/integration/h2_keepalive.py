# SPDX-License-Identifier: Apache-2.0
"""warden integration suite: connection timers of the h2 transport (issue 9, item 1:
"Keepalive: answer PINGs, detect dead peers, idle timeout"), seen on the wire by hand-framed
HTTP/2 connections (h2_attacks.RawConn: raw frames, HPACK literals only):

- keepalive_time / keepalive_timeout: an idle connection gets warden's PING after
  keepalive_time; a peer that never answers is closed keepalive_timeout later (and the
  close is logged), a peer that ACKs is kept and still served;
- min_ping_interval: a PING flood without requests is told off with GOAWAY
  ENHANCE_YOUR_CALM "too_many_pings" and closed, as gRPC core does; pings paced at the
  interval, or next to requests, are not;
- max_connection_idle: a connection without an open stream for that long gets the
  two-step GOAWAY (notice 2^31-1, then its last stream id) and is closed; one holding a
  call open is not;
- max_connection_age (+grace): the same two GOAWAYs after the age (jittered by up to
  10%), the last stream id naming the call in flight, which is still answered; a call
  still unfinished at the end of the grace is cut by closing the connection;
- the output buffer, held by a connection only while its socket is behind: a peer that
  stops reading while 1 MiB answers come back still gets every byte once it reads.

Every warden here says `transport h2` (the only transport since 0.2.0), as in
h2_attacks.py and sec_transport.py. Durations
are short (1-2 s); every wait polls with a deadline, and each scenario takes a few seconds.
Loaded by run.py (`h2_keepalive.register(scenario)`); scenarios are named h2_keepalive_*.
"""
import select
import socket
import struct
import time

import harness as H
from harness import ALLOW_RAW, Warden, ensure
from h2_attacks import (DATA, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, HEADERS, PING,
                        SETTINGS, WINDOW_UPDATE, RawConn, frame, grpc_frame, request_block)

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`
H2 = ["--set", "transport=h2", "--workers", "2"]
NO_ERROR = 0
NOTICE_ID = (1 << 31) - 1


def connect(w, quiet=False):
    """A raw connection that did the handshake (warden's SETTINGS arrived)."""
    c = RawConn(w.port, quiet=quiet)
    end = time.monotonic() + 5
    while not c.got_settings and c.pump(0.1) and time.monotonic() < end:
        pass
    ensure(c.got_settings, "no SETTINGS from warden within 5 s")
    return c


def poll(conns, cond, seconds, what):
    """Pumps `conns` until cond() holds; fails after `seconds`."""
    end = time.monotonic() + seconds
    while not cond():
        ensure(time.monotonic() < end, "%s: not within %.1f s" % (what, seconds))
        for c in conns:
            c.pump(0.02)


def authn_request():
    return grpc_frame(0, H.authn_req("demo", "demo").SerializeToString())


def start_call(c, sid, end=True):
    """A call to OnClientAuthenticate demo/demo on stream sid; end=False sends only the
    HEADERS (the call stays in flight until finish_call)."""
    c.open_stream(sid, request_block(H.path("OnClientAuthenticate")))
    if end:
        finish_call(c, sid)


def finish_call(c, sid):
    c.send(frame(DATA, END_STREAM, sid, authn_request()))


def answered_ok(c, sid):
    """The stream ended with warden's ALLOW message (HEADERS, DATA, trailers)."""
    return sid in c.ended and c.data.get(sid) == grpc_frame(0, ALLOW_RAW)


def goaway_steps(c):
    return [(last, code) for last, code, _, _ in c.goaways]


@_scenario
def h2_keepalive_pings(s, h):
    args = H2 + ["--set", "keepalive_time=2s", "--set", "keepalive_timeout=1s"]
    with Warden(h, args=args, name="ka-ping") as w:
        silent = connect(w, quiet=True)  # never writes again: no ACK
        t_silent = time.monotonic()
        live = connect(w)  # ACKs every PING (RawConn does)
        with s.check("h2_keepalive_idle_connection_gets_a_ping_after_keepalive_time"):
            poll([silent, live], lambda: silent.pings or silent.closed, 6,
                 "warden's PING on the silent connection")
            ensure(silent.pings, "the silent connection was closed without a PING first")
            waited = silent.pings[0] - t_silent
            ensure(waited >= 1.8, "PING after %.2f s, keepalive_time is 2 s" % waited)
        with s.check("h2_keepalive_unanswered_ping_closes_the_connection"):
            ensure(silent.wait_closed(time.monotonic() + 4),
                   "the silent connection is still open 4 s after the PING")
            after = time.monotonic() - silent.pings[0]
            ensure(0.8 <= after, "closed %.2f s after the PING, keepalive_timeout is 1 s" % after)
            w.wait_count(r"no answer to a PING within keepalive_timeout", 1, "the close is logged")
        with s.check("h2_keepalive_peer_answering_pings_is_kept_and_served"):
            poll([live], lambda: len(live.pings) >= 2 or live.closed, 8,
                 "two PINGs on the answering connection")
            ensure(not live.closed and live.goaway is None,
                   "the answering connection was closed (GOAWAY %s)" % live.goaway)
            start_call(live, 1)
            poll([live], lambda: 1 in live.ended or live.closed, 5, "the call on it")
            ensure(answered_ok(live, 1), "call after the pings: %r" % live.data.get(1))
        silent.close()
        live.close()


@_scenario
def h2_keepalive_ping_flood(s, h):
    args = H2 + ["--set", "min_ping_interval=300ms"]
    with Warden(h, args=args, name="ka-flood") as w:
        with s.check("h2_keepalive_ping_flood_gets_goaway_too_many_pings"):
            c = connect(w)
            c.send(b"".join(frame(PING, 0, 0, b"%08d" % i) for i in range(10)))
            ensure(c.wait_closed(time.monotonic() + 5), "the flooding connection is still open")
            ensure(c.goaways and c.goaways[-1][1] == ENHANCE_YOUR_CALM and
                   c.goaways[-1][2] == b"too_many_pings",
                   "GOAWAY %r, want ENHANCE_YOUR_CALM (11) too_many_pings" % c.goaways)
            w.wait_count(r"more often than min_ping_interval \(300 ms\)", 1, "the GOAWAY is logged")
            c.close()
        with s.check("h2_keepalive_pings_at_the_interval_or_with_requests_are_not_strikes"):
            paced = connect(w)
            busy = connect(w)
            for i in range(6):
                # pings 0.4 s apart (interval 300 ms) on one connection; on the other,
                # three pings back to back around each request (BDP pings do that)
                paced.send(frame(PING, 0, 0, b"paced%03d" % i))
                busy.send(frame(PING, 0, 0, b"busy0%03d" % i) * 3)
                start_call(busy, 2 * i + 1)
                end = time.monotonic() + 0.4  # the pace of the pings, not a wait for warden
                while time.monotonic() < end:
                    paced.pump(0.02)
                    busy.pump(0.02)
            poll([busy], lambda: 11 in busy.ended or busy.closed, 5, "the last call")
            for c, name in ((paced, "paced"), (busy, "busy")):
                c.pump(0.1)
                ensure(not c.closed and c.goaway is None,
                       "%s connection: GOAWAY %s, closed %s" % (name, c.goaway, c.closed))
            ensure(all(answered_ok(busy, 2 * i + 1) for i in range(6)),
                   "calls next to pings: %r" % busy.data)
            paced.close()
            busy.close()


@_scenario
def h2_keepalive_idle(s, h):
    args = H2 + ["--set", "max_connection_idle=1s"]
    with Warden(h, args=args, name="ka-idle") as w:
        idle = connect(w)
        held = connect(w)
        start_call(idle, 1)
        start_call(held, 1, end=False)  # in flight until we finish it
        with s.check("h2_keepalive_idle_connection_gets_goaway_then_is_closed"):
            poll([idle, held], lambda: 1 in idle.ended or idle.closed, 5, "the first call")
            ensure(answered_ok(idle, 1), "first call: %r" % idle.data.get(1))
            t_done = time.monotonic()
            poll([idle, held], lambda: len(idle.goaways) >= 2 or idle.closed, 5,
                 "two GOAWAYs on the idle connection")
            ensure(goaway_steps(idle)[:2] == [(NOTICE_ID, NO_ERROR), (1, NO_ERROR)],
                   "GOAWAYs %r, want the notice (2^31-1) then last stream 1" % idle.goaways)
            after = idle.goaways[0][3] - t_done
            ensure(after >= 0.8, "GOAWAY %.2f s after the last call, idle limit 1 s" % after)
            ensure(idle.wait_closed(time.monotonic() + 3), "still open after the GOAWAY")
        with s.check("h2_keepalive_connection_with_a_call_in_flight_is_not_idle"):
            ensure(not held.closed and not held.goaways,
                   "GOAWAY %r / closed %s while a call was in flight" % (held.goaways,
                                                                         held.closed))
            finish_call(held, 1)
            poll([held], lambda: 1 in held.ended or held.closed, 5, "the held call")
            ensure(answered_ok(held, 1), "held call: %r" % held.data.get(1))
            poll([held], lambda: held.closed, 5, "the idle close after the held call")
            ensure(goaway_steps(held)[:2] == [(NOTICE_ID, NO_ERROR), (1, NO_ERROR)],
                   "GOAWAYs %r" % held.goaways)
        idle.close()
        held.close()


@_scenario
def h2_keepalive_age(s, h):
    args = H2 + ["--set", "max_connection_age=1s", "--set", "max_connection_age_grace=1500ms"]
    with Warden(h, args=args, name="ka-age") as w:
        t0 = time.monotonic()
        finishing = connect(w)
        stuck = connect(w)
        start_call(finishing, 1)
        start_call(finishing, 3, end=False)  # in flight when the age comes
        start_call(stuck, 1, end=False)  # never finished
        with s.check("h2_keepalive_age_goaway_names_the_last_stream_and_serves_it"):
            poll([finishing, stuck], lambda: len(finishing.goaways) >= 2 or finishing.closed,
                 5, "two GOAWAYs on the aged connection")
            ensure(goaway_steps(finishing)[:2] == [(NOTICE_ID, NO_ERROR), (3, NO_ERROR)],
                   "GOAWAYs %r, want the notice (2^31-1) then last stream 3" %
                   finishing.goaways)
            age = finishing.goaways[0][3] - t0
            ensure(age >= 0.85, "GOAWAY at %.2f s, max_connection_age 1 s (-10%%)" % age)
            ensure(answered_ok(finishing, 1), "call before the age: %r" % finishing.data.get(1))
            finish_call(finishing, 3)
            poll([finishing, stuck], lambda: 3 in finishing.ended or finishing.closed, 5,
                 "the call in flight at the GOAWAY")
            ensure(answered_ok(finishing, 3), "call in flight: %r" % finishing.data.get(3))
            ensure(finishing.wait_closed(time.monotonic() + 3),
                   "still open after its last call")
        with s.check("h2_keepalive_age_grace_cuts_a_call_still_in_flight"):
            ensure(stuck.wait_closed(time.monotonic() + 5),
                   "a call in flight kept the aged connection open past the grace")
            # a lower bound that no client delay can break: t0 precedes the connection, the
            # close is seen after it happened; the server closes no earlier than age (-10%)
            # + the 100 ms between the two GOAWAYs + the grace = 0.9 + 0.1 + 1.5 s
            after = time.monotonic() - t0
            ensure(stuck.goaways and after >= 2.45,  # 50 ms for millisecond clocks
                   "closed %.2f s after connecting: before max_connection_age (1 s, -10%%) + "
                   "100 ms + max_connection_age_grace (1.5 s) (GOAWAYs %r)" % (
                       after, stuck.goaways))
            ensure(1 not in stuck.ended, "the stuck call was answered?")
            w.wait_count(r"at the end of max_connection_age_grace", 1, "the cut is logged")
        finishing.close()
        stuck.close()


@_scenario
def h2_keepalive_output_buffer(s, h):
    """A connection holds an output buffer only while the socket is behind (h2server.c
    out_settle): a peer that stops reading while 1 MiB echoes come back must still get every
    byte, in order, once it reads again."""
    n, size = 12, 1 << 20
    args = H2 + ["--set", "max_message_size=2MiB"]
    with Warden(h, args=args, name="ka-outbuf") as w:
        with s.check("h2_keepalive_slow_reader_gets_every_byte_of_large_answers"):
            c = connect(w)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
            # our windows wide open: only the socket holds warden's answers back
            c.send(frame(SETTINGS, 0, 0, struct.pack(">HI", 4, (1 << 31) - 1)) +
                   frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", (1 << 31) - 1 - 65535)))
            poll([c], lambda: c.conn_window >= n * (size + 4096) or c.closed, 5,
                 "warden's connection window")
            path = H.path("OnMessagePublish")
            out, want = b"", {}
            for i in range(n):
                payload = bytes([i]) * size
                msg = H.message("t/%d" % i, payload=payload)
                sid = 2 * i + 1
                want[sid] = payload
                out += frame(HEADERS, END_HEADERS, sid, request_block(path))
                body = grpc_frame(0, H.publish_req(msg).SerializeToString())
                for off in range(0, len(body), 16384):
                    last = off + 16384 >= len(body)
                    out += frame(DATA, END_STREAM if last else 0, sid, body[off:off + 16384])
            c.sock.setblocking(False)
            # write without reading while the socket takes bytes: warden's answers fill the
            # socket buffers, its writes return EAGAIN with bytes pending (kept in the
            # connection's own buffer), it stops reading; only then read (and write on)
            end = time.monotonic() + 60
            while (out or len(c.ended) < n) and not c.closed:
                ensure(time.monotonic() < end, "%d of %d answers after 60 s" % (
                    len(c.ended), n))
                _, wr, _ = select.select([], [c.sock] if out else [], [], 0.5)
                if wr:
                    try:
                        out = out[c.sock.send(out[:1 << 16]):]
                        continue
                    except BlockingIOError:
                        pass
                c.pump(0.05)  # the socket stalled (or all is sent): read
                c.sock.setblocking(False)
            for sid, payload in want.items():
                got = c.data.get(sid, b"")
                ensure(len(got) > 5 and got[0] == 0, "stream %d: %d bytes" % (sid, len(got)))
                r = H.pb.ValuedResponse.FromString(got[5:])
                ensure(r.message.payload == payload, "stream %d: the echo differs" % sid)
            c.close()
