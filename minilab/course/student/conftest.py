# Makes `import exercises` work in the tests, and runs hypothesis as the grader does: the same examples on every
# run (derandomize), no example database.
from hypothesis import HealthCheck, settings

settings.register_profile("course", derandomize=True, database=None, deadline=None, max_examples=50,
                          suppress_health_check=list(HealthCheck))
settings.load_profile("course")
