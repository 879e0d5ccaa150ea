"""Does nothing: for cold-start and throughput measurements."""


def lambda_handler(event, context):
    return None
