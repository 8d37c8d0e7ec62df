package dev.jvmm.cli.api;

import dev.jvmm.cli.api.ApiException.Kind;
import java.util.Arrays;
import java.util.List;

/**
 * Firecracker's REST API as a function: {@link #handle} maps an {@link ApiRequest} to an {@link ApiResponse} with
 * Firecracker's status codes (204 for a change, 200 with a body for a read, 400 with a {@code fault_message} for
 * anything refused, including unknown paths and methods), on any thread and without a socket.
 *
 * <p>{@link #isRead} tells the transport which requests only read: they never wait (see {@link Instance}), so a
 * transport may answer them at once while changes queue.
 */
public final class Api {
    private final Instance instance;

    public Api(Instance instance) {
        this.instance = instance;
    }

    public Instance instance() {
        return instance;
    }

    /** A GET: answered from the instance's current values without waiting for any lock or vCPU. */
    public static boolean isRead(ApiRequest r) {
        return r.method().equals("GET");
    }

    /** A Firecracker configuration file (--config-file): the same bodies under their resource names. */
    public static Bodies.VmConfig readConfig(byte[] json) {
        return Json.read(json, Bodies.VmConfig.class);
    }

    public ApiResponse handle(ApiRequest r) {
        ApiResponse response;
        try {
            response = route(r);
        } catch (ApiException e) {
            response = ApiResponse.fault(ApiResponse.BAD_REQUEST, e.getMessage());
        } catch (RuntimeException e) {
            org.slf4j.LoggerFactory.getLogger(Api.class).warn("{} {} failed", r.method(), r.path(), e);
            response = ApiResponse.fault(ApiResponse.INTERNAL_ERROR, "Internal VMM error: " + e);
        }
        instance.counted(response);
        return response;
    }

    private ApiResponse route(ApiRequest r) {
        // "/drives/rootfs/" and "/drives/rootfs" alike, as Firecracker splits the path.
        List<String> p = Arrays.asList(r.path().replaceFirst("^/+", "").split("/", -1));
        if (!p.isEmpty() && p.getLast().isEmpty() && p.size() > 1) p = p.subList(0, p.size() - 1);
        String resource = p.isEmpty() ? "" : p.getFirst();
        switch (r.method()) {
            case "GET" -> {
                if (r.hasBody()) throw new ApiException(Kind.BAD_BODY, "GET request cannot have a body.");
                if (p.size() == 1) {
                    switch (resource) {
                        case "" -> {
                            return ApiResponse.ok(instance.info());
                        }
                        case "machine-config" -> {
                            return ApiResponse.ok(instance.machineConfig());
                        }
                        case "version" -> {
                            return ApiResponse.ok(instance.version());
                        }
                        default -> {}
                    }
                }
                if (p.equals(List.of("vm", "config"))) return ApiResponse.ok(instance.vmConfig());
                if (p.equals(List.of("jvmm", "vm"))) return ApiResponse.ok(instance.details());
                if (p.equals(List.of("jvmm", "metrics"))) return ApiResponse.ok(instance.metrics());
            }
            case "PUT" -> {
                if (!r.hasBody()) throw new ApiException(Kind.BAD_BODY, "Empty PUT request.");
                switch (resource) {
                    case "actions" -> {
                        return p.size() == 1
                                ? action(Json.read(r.body(), Bodies.InstanceActionInfo.class))
                                : invalid(r);
                    }
                    case "boot-source" -> {
                        if (p.size() != 1) return invalid(r);
                        instance.putBootSource(Json.read(r.body(), Bodies.BootSource.class));
                        return ApiResponse.noContent();
                    }
                    case "machine-config" -> {
                        if (p.size() != 1) return invalid(r);
                        instance.putMachineConfig(Json.read(r.body(), Bodies.MachineConfiguration.class));
                        return ApiResponse.noContent();
                    }
                    case "drives" -> {
                        String id = id(p, r);
                        Bodies.Drive d = Json.read(r.body(), Bodies.Drive.class);
                        if (!id.equals(d.driveId()))
                            throw new ApiException(
                                    Kind.BAD_ID, "The id from the path does not match the id from the body!");
                        instance.putDrive(d);
                        return ApiResponse.noContent();
                    }
                    case "network-interfaces" -> {
                        String id = id(p, r);
                        Bodies.NetworkInterface n = Json.read(r.body(), Bodies.NetworkInterface.class);
                        if (!id.equals(n.ifaceId()))
                            throw new ApiException(
                                    Kind.BAD_ID,
                                    "The id from the path [" + id + "] does not match the id from the body ["
                                            + n.ifaceId() + "]!");
                        instance.putNetworkInterface(n);
                        return ApiResponse.noContent();
                    }
                    case "vsock" -> {
                        if (p.size() != 1) return invalid(r);
                        instance.putVsock(Json.read(r.body(), Bodies.Vsock.class));
                        return ApiResponse.noContent();
                    }
                    case "logger" -> {
                        if (p.size() != 1) return invalid(r);
                        instance.putLogger(Json.read(r.body(), Bodies.Logger.class));
                        return ApiResponse.noContent();
                    }
                    case "metrics" -> {
                        if (p.size() != 1) return invalid(r);
                        instance.putMetrics(Json.read(r.body(), Bodies.Metrics.class));
                        return ApiResponse.noContent();
                    }
                    case "snapshot" -> {
                        if (p.equals(List.of("snapshot", "create"))) {
                            instance.createSnapshot(Json.read(r.body(), Bodies.SnapshotCreateParams.class));
                            return ApiResponse.noContent();
                        }
                        if (p.equals(List.of("snapshot", "load"))) {
                            instance.loadSnapshot(Json.read(r.body(), Bodies.SnapshotLoadParams.class));
                            return ApiResponse.noContent();
                        }
                        return invalid(r);
                    }
                    case "jvmm" -> {
                        if (!p.equals(List.of("jvmm", "actions"))) return invalid(r);
                        return jvmmAction(Json.read(r.body(), Bodies.JvmmAction.class));
                    }
                    default -> {}
                }
            }
            case "PATCH" -> {
                if (!r.hasBody()) throw new ApiException(Kind.BAD_BODY, "Empty PATCH request.");
                if (p.equals(List.of("machine-config"))) {
                    instance.patchMachineConfig(Json.read(r.body(), Bodies.MachineConfiguration.class));
                    return ApiResponse.noContent();
                }
                if (p.equals(List.of("vm"))) {
                    String state = Json.read(r.body(), Bodies.Vm.class).state();
                    if (state == null) throw new ApiException(Kind.BAD_JSON, "missing field `state`");
                    switch (Resources.variant(state, "state", "Paused", "Resumed")) {
                        case "Paused" -> instance.pause();
                        default -> instance.resume();
                    }
                    return ApiResponse.noContent();
                }
            }
            default -> {}
        }
        return invalid(r);
    }

    private ApiResponse action(Bodies.InstanceActionInfo a) {
        if (a.actionType() == null) throw new ApiException(Kind.BAD_JSON, "missing field `action_type`");
        switch (Resources.variant(a.actionType(), "action_type", "FlushMetrics", "InstanceStart", "SendCtrlAltDel")) {
            case "InstanceStart" -> instance.start();
            case "SendCtrlAltDel" -> instance.sendCtrlAltDel();
            default -> instance.flushMetrics();
        }
        return ApiResponse.noContent();
    }

    /** PUT /jvmm/actions: what the verbs need that Firecracker's actions do not offer. */
    private ApiResponse jvmmAction(Bodies.JvmmAction a) {
        if (a.actionType() == null) throw new ApiException(Kind.BAD_JSON, "missing field `action_type`");
        switch (Resources.variant(a.actionType(), "action_type", "Reboot", "Reset", "Stop")) {
            case "Reboot" -> instance.reboot();
            case "Reset" -> instance.reset();
            default -> instance.stop();
        }
        return ApiResponse.noContent();
    }

    /** The resource id after the resource: present, alphanumeric or '_', and the last path segment. */
    private static String id(List<String> p, ApiRequest r) {
        if (p.size() < 2 || p.get(1).isEmpty()) throw new ApiException(Kind.BAD_ID, "The ID cannot be empty.");
        if (p.size() > 2) throw invalidPath(r);
        String id = p.get(1);
        if (!id.chars().allMatch(c -> c == '_' || Character.isLetterOrDigit(c)))
            throw new ApiException(
                    Kind.BAD_ID, "API Resource IDs can only contain alphanumeric characters and underscores.");
        return id;
    }

    private static ApiResponse invalid(ApiRequest r) {
        throw invalidPath(r);
    }

    private static ApiException invalidPath(ApiRequest r) {
        String path = r.path().length() > 200 ? r.path().substring(0, 200) + "..." : r.path();
        return new ApiException(
                Kind.INVALID_PATH_METHOD, "Invalid request method and/or path: " + r.method() + " " + path + ".");
    }
}
