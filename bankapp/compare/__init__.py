"""The tools that measure the lab: the guard matrix run over real HTTP,
the processes it starts, and the report it writes."""
