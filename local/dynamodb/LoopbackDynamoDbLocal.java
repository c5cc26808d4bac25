// DynamoDB Local listening on 127.0.0.1 only. Its command line has no bind address, and the
// Jetty server it builds listens on every interface; so this launcher builds the server from the
// same arguments, points its connector at loopback, and starts it. Run as a single-file source
// program (`java -cp DynamoDBLocal.jar LoopbackDynamoDbLocal.java -port N ...`): nothing to build.
//
// It also answers only to its own name (127.0.0.1:PORT, localhost:PORT), as the API does.
//
// ServerRunner.main is not used, so telemetry is never configured (nothing leaves the machine);
// -disableTelemetry is passed as well in case a later version configures it elsewhere.

import java.lang.reflect.Field;
import java.util.Locale;
import java.util.Set;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
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
    int port = -1;
    for (Connector connector : connectors) {
      ServerConnector network = (ServerConnector) connector;
      network.setHost("127.0.0.1");
      port = network.getPort();
    }
    // DynamoDB Local takes any credentials, so a web page whose name was rebound to 127.0.0.1
    // could read and write every table: only requests naming this server are answered.
    Set<String> own = Set.of("127.0.0.1:" + port, "localhost:" + port);
    server.setHandler(
        new Handler.Wrapper(server.getHandler()) {
          @Override
          public boolean handle(Request request, Response response, Callback callback) throws Exception {
            String host = request.getHeaders().get(HttpHeader.HOST);
            if (host == null || !own.contains(host.toLowerCase(Locale.ROOT))) {
              Response.writeError(request, response, callback, 421, "not this server's name");
              return true;
            }
            return super.handle(request, response, callback);
          }
        });
    proxy.start();
  }
}
