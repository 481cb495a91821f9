"""Hold packets for a fixed time, then let them go: link delay for kernels without netem.

An nftables rule sends a host's packets to netfilter queue N; this process (one per
delayed host, started and killed by the lab by PID) accepts each one `ms` later.

    python -I haops/lab/delayer.py QUEUE MS     (standard library only)
"""

from __future__ import annotations

import heapq
import select
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS = 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQNL_CFG_CMD_BIND, NFQNL_COPY_META = 1, 1
NLM_F_REQUEST = 1
NF_ACCEPT = 1
NLMSG_HEADER = struct.Struct("=IHHII")
NFGEN_HEADER = struct.Struct("=BBH")


def _attribute(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _message(msg_type: int, queue: int, attributes: bytes) -> bytes:
    body = NFGEN_HEADER.pack(socket.AF_UNSPEC, 0, socket.htons(queue)) + attributes
    kind = (NFNL_SUBSYS_QUEUE << 8) | msg_type
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), kind, NLM_F_REQUEST, 0, 0) + body


def bind(queue: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((0, 0))
    sock.send(_message(NFQNL_MSG_CONFIG, queue,
                       _attribute(NFQA_CFG_CMD, struct.pack("=BxH", NFQNL_CFG_CMD_BIND, 0))))
    sock.send(_message(NFQNL_MSG_CONFIG, queue,
                       _attribute(NFQA_CFG_PARAMS, struct.pack(">IB", 0, NFQNL_COPY_META))))
    return sock


def packet_ids(data: bytes) -> list[int]:
    """IDs of the queued packets in one netlink read."""
    ids, offset = [], 0
    while offset + NLMSG_HEADER.size <= len(data):
        length, kind, _, _, _ = NLMSG_HEADER.unpack_from(data, offset)
        if length < NLMSG_HEADER.size:
            break
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            attr = offset + NLMSG_HEADER.size + NFGEN_HEADER.size
            while attr + 4 <= offset + length:
                attr_len, attr_type = struct.unpack_from("=HH", data, attr)
                if attr_len < 4:
                    break
                if attr_type & 0x7FFF == NFQA_PACKET_HDR:
                    ids.append(struct.unpack_from(">I", data, attr + 4)[0])
                attr += (attr_len + 3) & ~3
        offset += (length + 3) & ~3
    return ids


def accept(sock: socket.socket, queue: int, packet_id: int) -> None:
    sock.send(_message(NFQNL_MSG_VERDICT, queue,
                       _attribute(NFQA_VERDICT_HDR, struct.pack(">II", NF_ACCEPT, packet_id))))


def serve(queue: int, delay_s: float) -> None:
    sock = bind(queue)
    sys.stdout.write("ready\n")  # the lab waits for this line before queueing packets
    sys.stdout.flush()
    due: list[tuple[float, int]] = []
    while True:
        wait = max(0.0, due[0][0] - time.monotonic()) if due else None
        if select.select([sock], [], [], wait)[0]:
            try:
                data = sock.recv(1 << 16)
            except OSError:  # ENOBUFS: the kernel dropped some; they count as loss
                continue
            now = time.monotonic()
            for packet_id in packet_ids(data):
                heapq.heappush(due, (now + delay_s, packet_id))
        now = time.monotonic()
        while due and due[0][0] <= now:
            accept(sock, queue, heapq.heappop(due)[1])


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]) / 1000)
