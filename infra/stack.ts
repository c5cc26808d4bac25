import type { StackProps } from 'aws-cdk-lib';
import { CfnOutput, Stack } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { cloneCloudContext } from './cloud.js';
import type { PersonaPlatformProps } from './platform.js';
import { PersonaPlatform } from './platform.js';

export interface PersonaStackProps extends StackProps {
  readonly platform?: PersonaPlatformProps;
}

/** The stack `cdk deploy` creates: one PersonaPlatform and what a user needs to reach it. */
export class PersonaStack extends Stack {
  readonly platform: PersonaPlatform;

  constructor(scope: Construct, id: string, props: PersonaStackProps = {}) {
    super(scope, id, props);
    // `cdk deploy -c cloneSubnets=… -c cloneInstanceRoles=… -c azureCredentialsSecret=…`; props win.
    // `-c apiGatewayCloudWatchRole=true` in the one stack of an account and region that creates
    // API Gateway's logging role (an account-wide setting, off by default).
    const role: unknown = this.node.tryGetContext('apiGatewayCloudWatchRole');
    this.platform = new PersonaPlatform(this, 'Platform', {
      ...cloneCloudContext(this),
      ...(role === true || role === 'true' ? { apiGatewayCloudWatchRole: true } : {}),
      ...props.platform,
    });

    new CfnOutput(this, 'ApiUrl', { value: this.platform.apiUrl, description: 'Persona API base URL' });
    for (const [id, table] of Object.entries(this.platform.storage.tables)) {
      new CfnOutput(this, `${id}TableName`, { value: table.tableName, description: `${id} table` });
    }
    new CfnOutput(this, 'DataBucketName', {
      value: this.platform.storage.bucket.bucketName,
      description: 'Persona data bucket (PERSONA_BUCKET for `persona snapshot`)',
    });
    new CfnOutput(this, 'SsmNodePolicyArn', {
      value: this.platform.workflows.ssmNodePolicy.managedPolicyArn,
      description:
        'Attach to the role of every instance profile (and hybrid activation) that Persona captures over SSM: it lets the node write command output to the SSM output bucket',
    });
    new CfnOutput(this, 'NotificationTopicArn', {
      value: this.platform.notificationTopic.topicArn,
      description:
        'SNS topic of alarms and clone outcomes (Clone Succeeded, Clone Rolled Back, Clone Rollback Incomplete, Clone Planned): subscribe to it to be told',
    });
    if (this.platform.monitoring) {
      new CfnOutput(this, 'DashboardName', {
        value: this.platform.monitoring.dashboard.dashboardName,
        description: 'CloudWatch dashboard of operations, captures, errors and latencies',
      });
    }
    new CfnOutput(this, 'KeyArn', {
      value: this.platform.storage.key.keyArn,
      description: 'KMS key that wraps the snapshot store key (PERSONA_KMS_KEY_ID for `persona snapshot`)',
    });
  }
}
