// Runs once, when the mongo container starts on an empty volume (/docker-entrypoint-initdb.d),
// as the root user the image creates from MONGO_INITDB_ROOT_USERNAME / _PASSWORD (which also
// switch authentication on). Creates the platform's application user: readWrite on MONGO_DB only,
// the same user and role as local mode (iot_cli/localstack/mongo.py).
const user = process.env.MONGO_USER;
const pwd = process.env.MONGO_PASSWORD;
const dbName = process.env.MONGO_DB;
if (!user || !pwd || !dbName) {
  throw new Error("MONGO_USER, MONGO_PASSWORD and MONGO_DB must be set (.env)");
}
db.getSiblingDB("admin").createUser({ user: user, pwd: pwd, roles: [{ role: "readWrite", db: dbName }] });
print(`iot: MongoDB user ${user} can read and write ${dbName}`);
