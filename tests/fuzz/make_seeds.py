#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the generated seeds of tests/fuzz/corpus/hook and corpus/h2 (committed; rerun after
a change to proto/exhook.proto): one well-formed request per ExHook method, serialized by the
python protobuf runtime (first byte: the method index, as fuzz_hook reads it), and HTTP/2
byte streams after the client preface, built with the raw frame helpers of
tests/integration/h2_attacks.py (what fuzz_h2 reads).

    /usr/bin/python3 tests/fuzz/make_seeds.py --gen build/gen/py
"""
import argparse
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gen", default="build/gen/py")
    a = ap.parse_args()
    sys.path.insert(0, a.gen)
    sys.path.insert(0, os.path.join(HERE, "..", "integration"))
    import exhook_pb2 as pb
    import h2_attacks as T

    methods = re.findall(r"rpc (\w+)\((\w+)\)", open(os.path.join(HERE, "..", "..", "proto",
                                                                   "exhook.proto")).read())
    ci = dict(node="emqx@127.0.0.1", clientid="dev-1", username="demo", password="demo",
              peerhost="127.0.0.1", sockport=1883, protocol="mqtt", mountpoint="")
    msg = dict(node="n", id="1", qos=1, topic="users/demo/t", payload=b"hi", timestamp=1)
    reqs = {}
    for sub in ("hook", "h2"):
        os.makedirs(os.path.join(HERE, "corpus", sub), exist_ok=True)
    for i, (name, req) in enumerate(methods):
        cls = getattr(pb, req)
        m = cls()
        fields = {f.name for f in cls.DESCRIPTOR.fields}
        if "clientinfo" in fields:
            m.clientinfo.CopyFrom(pb.ClientInfo(**ci))
        if "conninfo" in fields:
            m.conninfo.CopyFrom(pb.ConnInfo(node="n", clientid="dev-1", username="demo",
                                            peerhost="127.0.0.1", sockport=1883,
                                            proto_name="MQTT", proto_ver="5", keepalive=60))
        if "message" in fields:
            m.message.CopyFrom(pb.Message(**msg))
        if name == "OnClientAuthorize":
            m.type = pb.ClientAuthorizeRequest.PUBLISH
            m.topic = "users/demo/x"
        if name == "OnClientAuthenticate":
            m.result = False
        if name == "OnProviderLoaded":
            m.broker.CopyFrom(pb.BrokerInfo(version="5.8.0", sysdescr="EMQX", uptime=1))
        if "topic_filters" in fields:
            m.topic_filters.add(name="users/demo/#").subopts.qos = 1
        if "subopts" in fields:
            m.subopts.qos = 1
        if "topic" in fields and not m.topic:
            m.topic = "users/demo/#"
        if "reason" in fields:
            m.reason = "normal"
        reqs[name] = m.SerializeToString()
        open(os.path.join(HERE, "corpus", "hook", "m%02d_%s" % (i, name)), "wb").write(
            bytes([i]) + reqs[name])
    # a v3-path authorize subscribe
    m = pb.ClientAuthorizeRequest(clientinfo=pb.ClientInfo(**ci), topic="users/+/x",
                                  type=pb.ClientAuthorizeRequest.SUBSCRIBE)
    idx = [n for n, _ in methods].index("OnClientAuthorize")
    open(os.path.join(HERE, "corpus", "hook", "v3_authorize_sub"), "wb").write(
        bytes([0x80 | idx]) + m.SerializeToString())

    # h2: the client's SETTINGS, then calls; bytes after the preface
    def call(sid, name, body, extra=()):
        path = "/emqx.exhook.v2.HookProvider/" + name
        return (T.frame(T.HEADERS, 0x4, sid, T.request_block(path, extra)) +
                T.frame(T.DATA, 0x1, sid, T.grpc_frame(0, body)))
    settings = T.frame(T.SETTINGS, 0, 0, struct.pack(">HI", 3, 100) + struct.pack(">HI", 4, 65535))
    ack = T.frame(T.SETTINGS, 1, 0)
    d = os.path.join(HERE, "corpus", "h2")
    w = lambda n, b: open(os.path.join(d, n), "wb").write(b)
    w("authenticate", settings + ack + call(1, "OnClientAuthenticate",
                                            reqs["OnClientAuthenticate"]))
    w("two_calls_ping", settings + call(1, "OnClientAuthorize", reqs["OnClientAuthorize"]) +
      T.frame(6, 0, 0, b"12345678") + call(3, "OnMessagePublish", reqs["OnMessagePublish"]))
    w("split_data", settings + T.frame(T.HEADERS, 0x4, 1, T.request_block(
        "/emqx.exhook.v3.HookProvider/OnClientAuthorize", [("grpc-timeout", "5S")])) +
      T.frame(T.DATA, 0, 1, T.grpc_frame(0, reqs["OnClientAuthorize"])[:7]) +
      T.frame(T.DATA, 0x1, 1, T.grpc_frame(0, reqs["OnClientAuthorize"])[7:]))
    w("rst_window_goaway", settings + call(1, "OnClientConnected", reqs["OnClientConnected"]) +
      T.frame(3, 0, 1, struct.pack(">I", 8)) + T.frame(8, 0, 0, struct.pack(">I", 1000)) +
      T.frame(7, 0, 0, struct.pack(">II", 0, 0)))
    w("health", settings + T.frame(T.HEADERS, 0x4, 1, T.request_block(
        "/grpc.health.v1.Health/Check")) + T.frame(T.DATA, 0x1, 1, T.grpc_frame(0, b"")))
    w("compressed", settings + T.frame(T.HEADERS, 0x4, 1, T.request_block(
        "/emqx.exhook.v2.HookProvider/OnClientAuthenticate", [("grpc-encoding", "gzip")])) +
      T.frame(T.DATA, 0x1, 1, T.grpc_frame(1, b"\x1f\x8b")))
    w("continuation", settings + T.frame(T.HEADERS, 0, 1, T.request_block(
        "/emqx.exhook.v2.HookProvider/OnClientAuthenticate")[:10]) +
      T.frame(9, 0x4, 1, T.request_block(
          "/emqx.exhook.v2.HookProvider/OnClientAuthenticate")[10:]) +
      T.frame(T.DATA, 0x1, 1, T.grpc_frame(0, reqs["OnClientAuthenticate"])))


if __name__ == "__main__":
    main()
