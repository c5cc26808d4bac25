// DynamoDB Local listening on 127.0.0.1 only. Its command line has no bind address, and the
// Jetty server it builds listens on every interface; so this launcher builds the server from the
// same arguments, points its connector at loopback, and starts it. Run as a single-file source
// program (`java -cp DynamoDBLocal.jar LoopbackDynamoDbLocal.java -port N ...`): nothing to build.
//
// ServerRunner.main is not used, so telemetry is never configured (nothing leaves the machine);
// -disableTelemetry is passed as well in case a later version configures it elsewhere.

import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public class LoopbackDynamoDbLocal {
  public static void main(String[] args) throws Exception {
    DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
    Field field = DynamoDBProxyServer.class.getDeclaredField("server");
    field.setAccessible(true);
    Server server = (Server) field.get(proxy);
    Connector[] connectors = server.getConnectors();
    if (connectors.length == 0) throw new IllegalStateException("DynamoDB Local has no connector to bind");
    for (Connector connector : connectors) ((ServerConnector) connector).setHost("127.0.0.1");
    proxy.start();
  }
}
