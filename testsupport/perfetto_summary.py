"""Reads a Perfetto trace with Perfetto's own schema (the `perfetto` Python package) and prints
what a test compares as one JSON object: threads, slices (begin/end paired per track),
instants and counter samples. Used by runtime/tests/report_perfetto.rs and scripts/perfetto-picture."""

import json
import sys

from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb


def value(a):
    kind = a.WhichOneof("value")
    return getattr(a, kind) if kind else None


def main(path):
    with open(path, "rb") as f:
        trace = pb.Trace.FromString(f.read())
    tracks, slices, instants, counters, open_slices = {}, [], [], [], {}
    clocks = []
    for p in trace.packet:
        if p.HasField("clock_snapshot"):
            clocks = [c.clock_id for c in p.clock_snapshot.clocks]
        if p.HasField("track_descriptor"):
            d = p.track_descriptor
            t = {"name": d.name}
            if d.HasField("thread"):
                t.update(pid=d.thread.pid, tid=d.thread.tid, comm=d.thread.thread_name)
            if d.HasField("process"):
                t.update(pid=d.process.pid, process=d.process.process_name)
            t["counter"] = d.HasField("counter")
            tracks[d.uuid] = t
        if not p.HasField("track_event"):
            continue
        e = p.track_event
        assert p.timestamp_clock_id == 3, "CLOCK_MONOTONIC timestamps"
        track = tracks[e.track_uuid]  # described before first use
        if e.type == pb.TrackEvent.TYPE_SLICE_BEGIN:
            s = {
                "name": e.name,
                "track": track,
                "ts": p.timestamp,
                "args": {a.name: value(a) for a in e.debug_annotations},
            }
            open_slices.setdefault(e.track_uuid, []).append(s)
        elif e.type == pb.TrackEvent.TYPE_SLICE_END:
            s = open_slices[e.track_uuid].pop(0)
            s["dur"] = p.timestamp - s["ts"]
            slices.append(s)
        elif e.type == pb.TrackEvent.TYPE_INSTANT:
            instants.append({"name": e.name, "track": track, "ts": p.timestamp})
        elif e.type == pb.TrackEvent.TYPE_COUNTER:
            counters.append({"track": track["name"], "ts": p.timestamp, "value": e.counter_value})
    unclosed = sum(len(v) for v in open_slices.values())
    json.dump(
        {
            "clocks": clocks,
            "slices": slices,
            "instants": instants,
            "counters": counters,
            "unclosed": unclosed,
        },
        sys.stdout,
    )


main(sys.argv[1])
