"""Test helper: sets up and inspects a moto_server (an AWS-compatible endpoint) with boto3.

Used by crates/cli/tests/aws.rs and crates/lambda/tests/handler.rs; never by flowhound itself.
  moto.py ENDPOINT setup BUCKET TOPIC QUEUE FILE=KEY...  -> JSON {topic_arn, queue_url}
  moto.py ENDPOINT drain QUEUE_URL                        -> JSON list of SNS notifications' Message bodies
  moto.py ENDPOINT metrics NAMESPACE                      -> JSON {"Metric|Dim=Val,...": sum}
  moto.py ENDPOINT put BUCKET FILE=KEY...                 -> uploads files
"""
import json
import sys

import boto3

endpoint, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


def put(bucket, pairs):
    s3 = boto3.client("s3", **kw)
    for pair in pairs:
        path, key = pair.split("=", 1)
        s3.upload_file(path, bucket, key)


if cmd == "setup":
    bucket, topic, queue, files = args[0], args[1], args[2], args[3:]
    boto3.client("s3", **kw).create_bucket(Bucket=bucket)
    put(bucket, files)
    sns = boto3.client("sns", **kw)
    sqs = boto3.client("sqs", **kw)
    arn = sns.create_topic(Name=topic)["TopicArn"]
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)
    print(json.dumps({"topic_arn": arn, "queue_url": url}))
elif cmd == "put":
    put(args[0], args[1:])
elif cmd == "drain":
    sqs = boto3.client("sqs", **kw)
    out = []
    while True:
        r = sqs.receive_message(QueueUrl=args[0], MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"])
        msgs = r.get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            note = json.loads(m["Body"])
            out.append({"subject": note.get("Subject"), "message": note["Message"], "attributes": note.get("MessageAttributes", {})})
            sqs.delete_message(QueueUrl=args[0], ReceiptHandle=m["ReceiptHandle"])
    print(json.dumps(out))
elif cmd == "metrics":
    import datetime

    cw = boto3.client("cloudwatch", **kw)
    now = datetime.datetime.now(datetime.timezone.utc)

    def total(name, dims):
        st = cw.get_metric_statistics(
            Namespace=args[0], MetricName=name, Dimensions=dims,
            StartTime=now - datetime.timedelta(hours=1), EndTime=now + datetime.timedelta(minutes=5),
            Period=60, Statistics=["Sum"],
        )
        return sum(p["Sum"] for p in st["Datapoints"])

    out, undimensioned = {}, set()
    for m in cw.list_metrics(Namespace=args[0])["Metrics"]:
        dims = ",".join(f"{d['Name']}={d['Value']}" for d in sorted(m["Dimensions"], key=lambda d: d["Name"]))
        if m["Dimensions"]:
            out[f"{m['MetricName']}|{dims}"] = total(m["MetricName"], m["Dimensions"])
        else:
            undimensioned.add(m["MetricName"])
    # moto ignores an empty dimension filter (real CloudWatch matches the series without
    # dimensions only): the undimensioned series is everything of the name minus the rest.
    for name in undimensioned:
        rest = sum(v for k, v in out.items() if k.startswith(name + "|"))
        out[f"{name}|"] = total(name, []) - rest
    print(json.dumps(out, sort_keys=True))
else:
    sys.exit(f"unknown command {cmd}")
