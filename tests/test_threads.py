

def test_a_trace_records_the_thread_count():
    from latentprobe import toy

    tm = toy.load("mediated")
    with pinned_threads(1):
        trace = tm.runner().run(**toy.toy_inputs(tm.examples("test", 2)).run_kwargs(), progress=False)
    assert trace.config["threads"] == 1
