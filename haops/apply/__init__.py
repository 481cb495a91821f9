"""apply: facts -> plan (data) -> checks here and on the host -> install -> activate -> prove -> roll back.

run       every host, in parallel or rolling batches
facts     what a host has now, one batched command and a pure parser
plan      facts in, plan out, no I/O
validation  the real checkers on this machine (also `haops validate`)
remote_check  the candidate tree on the host and its checkers
execute   install atomically, activate, prove, roll back the whole host on failure
lock      one apply at a time per host, on a lease
"""
