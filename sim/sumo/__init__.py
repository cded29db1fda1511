"""SUMO traffic for the simulator: derive site configs from a network, run controllers in lockstep.

Modules, from the network up:
- errors: the two error types of this layer (SimError, DerivationError).
- engine: finds SUMO and starts it through libsumo (or traci when libsumo is missing).
- scenarios: turns a scenario name or path into a .sumocfg, building shipped networks.
- network: reads one signalised junction from a .net.xml (sumolib) into plain data.
- derive: junction data -> a site config dict for edge.config, plus the SUMO bindings.
- site_toml: writes that dict as readable TOML.
- demand: movement flows from the route files (for Webster).
- controllers/: the signal controllers the runner can drive, by name.
- lockstep: the runner; metrics: the report; compare: many runs, a table and a chart.
"""
