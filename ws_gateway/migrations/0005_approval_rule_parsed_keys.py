"""Approval rules now hold the command policy's pattern keys ("cmd:..." / "exact:...").

Rules stored before held a regex of DANGEROUS_PATTERNS; the policy never looks
those up, so they are removed rather than left to look like live approvals.
"""

from django.db import migrations, models


def drop_regex_rules(apps, schema_editor):
    ApprovalRule = apps.get_model("ws_gateway", "ApprovalRule")
    ApprovalRule.objects.exclude(pattern__startswith="cmd:").exclude(pattern__startswith="exact:").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("ws_gateway", "0004_client_config_spawn_tree"),
    ]

    operations = [
        migrations.RunPython(drop_regex_rules, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="approvalrule",
            name="pattern",
            field=models.CharField(
                help_text="The command policy's pattern key of the approved command (ws_gateway.agent.policy).",
                max_length=255,
            ),
        ),
    ]
